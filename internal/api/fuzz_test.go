package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// fuzzPaths are the endpoints that read a body; fuzzTypes the bodies' declared types.
var (
	fuzzPaths = []string{"/api/ip/add/", "/api/ip/delete/", "/api/hostname/add/", "/api/hostname/delete/",
		"/api/proxy/add/", "/api/proxy/delete/", "/api/sub/create/", "/api/sub/edit/", "/api/sub/delete/"}
	fuzzTypes = []string{"application/x-www-form-urlencoded", "application/json", "multipart/form-data; boundary=b",
		"text/plain", "", "application/x-www-form-urlencoded; charset=utf-8"}
)

// FuzzAPIForms posts arbitrary bodies, as every supported type and some unsupported ones, to every
// endpoint that reads one, on a real node: whatever the input, the answer is a JSON object, a
// client error names what is wrong, and the server never fails (no 5xx).
func FuzzAPIForms(f *testing.F) {
	for _, s := range []struct {
		path, ctype byte
		body        string
	}{
		{0, 0, "ip=127.0.0.9"},
		{0, 1, `{"ip": "::ffff:127.0.0.9"}`},
		{0, 0, "ip=%zz"},
		{2, 0, "hostname=worker.example.net"},
		{4, 0, "proxy=us-ca&proxy=world"},
		{6, 1, `{"username": "bob-fuzz", "password": "fuzz-password-1", "proxies": ["us-ca"], "max_ips": 2}`},
		{6, 2, "--b\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nbob-m\r\n--b--\r\n"},
		{7, 0, "username=bob-sub&enabled=maybe"},
		{8, 1, `[1, 2]`},
		{6, 1, `{"username": {"a": 1}}`},
		{1, 0, "ip=1.2.3.4,,,5.6.7.8,\xff"},
	} {
		f.Add(s.path, s.ctype, []byte(s.body))
	}
	e := newEnv(f)
	client := e.client("")
	url := "https://" + e.node.APIAddr()
	f.Fuzz(func(t *testing.T, path, ctype byte, body []byte) {
		p := fuzzPaths[int(path)%len(fuzzPaths)]
		req, err := http.NewRequest(http.MethodPost, url+p, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ct := fuzzTypes[int(ctype)%len(fuzzTypes)]; ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		req.SetBasicAuth("bob", bobPW)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", p, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 {
			t.Fatalf("POST %s %q: %d %s", p, body, resp.StatusCode, raw)
		}
		if resp.StatusCode == http.StatusNoContent {
			return
		}
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil {
			t.Fatalf("POST %s %q: %d with a body that is not a JSON object: %q", p, body, resp.StatusCode, raw)
		}
		if msg, _ := obj["error"].(string); resp.StatusCode >= 400 && msg == "" {
			t.Fatalf("POST %s %q: %d without an error sentence: %s", p, body, resp.StatusCode, raw)
		}
	})
}
