package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
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
					return nil, fieldError(k, "Enter a list of strings.")
				}
				p[k] = append(p[k], s)
			}
		default:
			return nil, fieldError(k, "Enter a string or a list of strings.")
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

// formErrors collects per-field messages while a handler validates its parameters.
type formErrors map[string][]string

func (f formErrors) add(field, msg string) { f[field] = append(f[field], msg) }

func (f formErrors) err() error {
	if len(f) == 0 {
		return nil
	}
	return formError(f)
}

const msgRequired = "This field is required."

// requireOne reads a required single parameter.
func (f formErrors) requireOne(p params, name string) string {
	v := p.one(name)
	if v == "" {
		f.add(name, msgRequired)
	}
	return v
}

// ips parses a list of IP addresses, reporting malformed ones under field.
func (f formErrors) ips(field string, values []string) []netip.Addr {
	var out []netip.Addr
	for _, v := range values {
		ip, err := netip.ParseAddr(v)
		if err != nil {
			f.add(field, fmt.Sprintf("%q is not a valid IPv4 or IPv6 address.", v))
			continue
		}
		out = append(out, ip.Unmap())
	}
	return out
}

// boolean parses a true/false parameter.
func (f formErrors) boolean(field, v string) bool {
	b, err := strconv.ParseBool(v)
	if err != nil {
		f.add(field, "Enter true or false.")
	}
	return b
}
