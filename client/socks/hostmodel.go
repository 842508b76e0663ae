package socks

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
)

// maxRewriteBody bounds the request bodies defaultModel reads; a larger one
// passes unchanged (the API refuses bodies over its own limit anyway).
const maxRewriteBody = 1 << 20

// defaultModel makes the host name select the model (spec/08-client-api.md
// §7, spec/04-directory.md §7.2): a POST whose JSON body names no model
// ("model" absent, null or "") is given the host's model label, the
// catalog name or id of "<model>.unfed". A body that names a model keeps
// it, and anything that is not a JSON object passes unchanged for the API
// to judge.
func defaultModel(r *http.Request, model string) {
	if r.Method != http.MethodPost || r.Body == nil {
		return
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, maxRewriteBody+1))
	rest := r.Body
	restore := func(b []byte) {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), rest), rest}
	}
	if err != nil || len(buf) > maxRewriteBody {
		restore(buf)
		return
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(buf, &obj) != nil || obj == nil {
		restore(buf)
		return
	}
	if m, ok := obj["model"]; ok {
		var s *string
		if json.Unmarshal(m, &s) != nil || s != nil && *s != "" {
			restore(buf)
			return
		}
	}
	obj["model"], _ = json.Marshal(model)
	out, err := json.Marshal(obj)
	if err != nil {
		restore(buf)
		return
	}
	restore(out)
	r.ContentLength = int64(len(out))
	r.Header.Set("Content-Length", strconv.Itoa(len(out)))
}
