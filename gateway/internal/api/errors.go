package api

import (
	"net/http"

	"github.com/chatscalable/chatscalable/gateway/internal/httpjson"
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

// writeError writes a JSON error with status.
func writeError(w http.ResponseWriter, status int, code, message string) {
	httpjson.Error(w, status, code, message)
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }
