package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// maxBody bounds a request body: parameters are a few names and addresses.
const maxBody = 64 << 10

// params are a request's parameters, from the query (GET) or the body (POST): form-encoded,
// multipart or a JSON object. A list parameter may be repeated, comma-separated or a JSON array.
type params map[string][]string

func readParams(w http.ResponseWriter, r *http.Request) (params, error) {
	p := params(r.URL.Query())
	if r.Method != http.MethodPost {
		return p, nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		return readJSON(r.Body, p)
	case "multipart/form-data":
		if err := r.ParseMultipartForm(maxBody); err != nil {
			return nil, badBody(err)
		}
		for k, v := range r.MultipartForm.Value {
			p[k] = append(p[k], v...)
		}
		return p, nil
	default: // form-encoded, also when the client named no type
		if err := r.ParseForm(); err != nil {
			return nil, badBody(err)
		}
		for k, v := range r.PostForm {
			p[k] = append(p[k], v...)
		}
		return p, nil
	}
}

func badBody(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return newError(http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body is larger than %d bytes.", maxBody))
	}
	return newError(http.StatusBadRequest, "The request body could not be read as form data.")
}

func readJSON(body io.Reader, p params) (params, error) {
	var obj map[string]any
	dec := json.NewDecoder(body)
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return nil, newError(http.StatusBadRequest, "The request body is not a JSON object.")
	}
	for k, v := range obj {
		switch v := v.(type) {
		case string:
			p[k] = append(p[k], v)
		case bool:
			p[k] = append(p[k], strconv.FormatBool(v))
		case json.Number:
			p[k] = append(p[k], v.String())
		case nil:
		case []any:
			for _, item := range v {
				s, ok := item.(string)
				if !ok {
					return nil, domain.FieldError(k, "Enter a list of strings.")
				}
				p[k] = append(p[k], s)
			}
		default:
			return nil, domain.FieldError(k, "Enter a string or a list of strings.")
		}
	}
	return p, nil
}

// has reports whether the parameter was given at all.
func (p params) has(name string) bool {
	_, ok := p[name]
	return ok
}

// one returns a single-valued parameter, trimmed.
func (p params) one(name string) string {
	if v := p[name]; len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

// list returns a list parameter: repeated fields and comma-separated values alike.
func (p params) list(name string) []string {
	var out []string
	for _, v := range p[name] {
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}

// optional returns a pointer to a single parameter, nil when it was not given.
func (p params) optional(name string) *string {
	if !p.has(name) {
		return nil
	}
	v := p.one(name)
	return &v
}

// optionalList returns a pointer to a list parameter, nil when it was not given.
func (p params) optionalList(name string) *[]string {
	if !p.has(name) {
		return nil
	}
	v := p.list(name)
	return &v
}

// boolean reads a true/false parameter, nil when it was not given.
func (p params) boolean(name string) (*bool, error) {
	if !p.has(name) {
		return nil, nil
	}
	b, err := strconv.ParseBool(p.one(name))
	if err != nil {
		return nil, domain.FieldError(name, "Enter true or false.")
	}
	return &b, nil
}
