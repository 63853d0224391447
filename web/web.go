// Package web holds the browser chat page for ChatScalable: the static
// assets (JavaScript and CSS) and the HTML template of the index page,
// all embedded in the binary so the gateway needs no files on disk.
package web

import (
	"embed"
	"html/template"
	"io/fs"
)

//go:embed static
var staticFiles embed.FS

//go:embed templates/index.html
var templateFiles embed.FS

//go:embed templates/badroom.html
var badRoomFiles embed.FS

var index = template.Must(template.ParseFS(templateFiles, "templates/index.html"))

// PageData is the data passed when executing the Index template.
type PageData struct {
	// Node is the name of the gateway node serving the page.
	Node string
	// Room is the room to show; callers should default it to "lobby".
	Room string
	// Version is the build version of the service.
	Version string
	// MaxMessageBytes is the largest message text the gateway accepts;
	// the page checks what is typed against it.
	MaxMessageBytes int
	// Auth is "jwt" when the gateway requires tokens, else "off".
	Auth string
	// AuthCookie names the cookie the page keeps its token in, for the
	// event stream (EventSource cannot send headers); "" when the gateway
	// reads no cookie.
	AuthCookie string
	// TokenURL is where the page fetches a token, and a fresh one before
	// the current expires: a GET with the browser's credentials answering
	// {"token":"…"} (the application's sign-in service).
	TokenURL string
	// SignInURL is where the page links the user when the sign-in service
	// does not know them (TokenURL answered 401), with ?next= the page's
	// path; "" shows no link.
	SignInURL string
}

// Static returns the contents of the embedded static/ folder, with the
// files at the root ("app.js", "style.css").
func Static() fs.FS {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // cannot happen: "static" is a valid, embedded path
	}
	return sub
}

// Index returns the parsed template of the chat page. Execute it with a
// PageData value. The template is parsed once, at package initialisation.
func Index() *template.Template {
	return index
}
