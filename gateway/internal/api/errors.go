package api

import (
	"encoding/json"
	"net/http"
)

// Error codes of the JSON error body {"error":{"code":…,"message":…}}.
const (
	CodeBadRequest       = "bad_request"
	CodeEmptyMessage     = "empty_message"
	CodeMessageTooLarge  = "message_too_large"
	CodeInvalidUTF8      = "invalid_utf8"
	CodeInvalidChars     = "invalid_characters"
	CodeInvalidRoom      = "invalid_room"
	CodeInvalidUser      = "invalid_user"
	CodeInvalidJSON      = "invalid_json"
	CodeInvalidCursor    = "invalid_cursor"
	CodeInvalidLimit     = "invalid_limit"
	CodeInvalidID        = "invalid_id"
	CodeUnsupportedType  = "unsupported_media_type"
	CodeBodyTooLarge     = "body_too_large"
	CodeRequestTimeout   = "request_timeout"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeUnavailable      = "unavailable"
	CodeTooManyConns     = "too_many_connections"
	CodeInternal         = "internal"
)

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError writes a JSON error with status.
func writeError(w http.ResponseWriter, status int, code, message string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, message
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
