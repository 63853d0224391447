package web

import (
	"html/template"
)

var badRoom = template.Must(template.ParseFS(badRoomFiles, "templates/badroom.html"))

// BadRoomData is the data of the BadRoom template.
type BadRoomData struct {
	// Room is the name asked for, Reason why it is not a room name, and
	// Default the room the page links to instead.
	Room, Reason, Default string
}

// BadRoom returns the page that answers /?room= with a name that is not a
// room's: it says why and links to the default room, rather than showing
// another room as if it were the one asked for.
func BadRoom() *template.Template { return badRoom }
