// Package httpjson writes the JSON answers every HTTP server of the gateway
// module gives, errors included: {"error":{"code":…,"message":…}}, where
// code is stable and message is for people.
package httpjson

import (
	"encoding/json"
	"net/http"
)

// ErrorBody is the body of an error answer.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Error writes a JSON error with status.
func Error(w http.ResponseWriter, status int, code, message string) {
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, message
	Write(w, status, b)
}

// Write writes v as JSON with status; the answer is never cached.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteEncoded writes body, which is already JSON, with status and the
// headers Write gives; like Write's, the body ends with a newline.
func WriteEncoded(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
