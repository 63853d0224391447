package api

// decodeSimpleBody decodes the common publish body without reflection: one
// object whose members are among "id", "user" and "text", spelled so, each
// a string without escapes or control characters, with only whitespace
// around. It reports false for anything else, which encoding/json then
// decodes (and words the error of) as before. body is valid UTF-8.
func decodeSimpleBody(body []byte) (publishBody, bool) {
	var in publishBody
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return in, false
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return in, skipSpace(body, i+1) == len(body)
	}
	for {
		key, next, ok := simpleString(body, i)
		if !ok {
			return in, false
		}
		i = skipSpace(body, next)
		if i >= len(body) || body[i] != ':' {
			return in, false
		}
		val, next, ok := simpleString(body, skipSpace(body, i+1))
		if !ok {
			return in, false
		}
		v := string(val)
		switch string(key) {
		case "id":
			in.ID = &v
		case "user":
			in.User = &v
		case "text":
			in.Text = &v
		default:
			return in, false // encoding/json matches other spellings of the names
		}
		i = skipSpace(body, next)
		if i >= len(body) {
			return in, false
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case '}':
			return in, skipSpace(body, i+1) == len(body)
		default:
			return in, false
		}
	}
}

// simpleString returns the contents of the JSON string at body[i] and the
// index after it, if it has no escapes and no control characters.
func simpleString(body []byte, i int) ([]byte, int, bool) {
	if i >= len(body) || body[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(body); j++ {
		switch c := body[j]; {
		case c == '"':
			return body[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
