package domain

import "strings"

// UsernameParams are the words that start a steering parameter inside a proxy username
// ("alice-session-abc-country-us"), with their aliases, so no username may contain them.
var UsernameParams = []string{"session", "sessid", "country", "cc", "ip", "sesstime", "sessmode", "region", "city", "asn"}

// ValidateUsername reports whether s can be an account or sub-account username: 1–64 characters of
// letters, digits and . _ @ -, starting with a letter or digit, and none of the UsernameParams
// between dashes inside ("-session-", "-cc-"…: those introduce username steering parameters).
func ValidateUsername(s string) error {
	if s == "" || len(s) > 64 {
		return Errorf(EINVALID, "Username must be 1 to 64 characters long.")
	}
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			i > 0 && (c == '.' || c == '_' || c == '@' || c == '-')
		if !ok {
			return Errorf(EINVALID, "Username may contain only letters, digits and . _ @ - and must start with a letter or digit.")
		}
	}
	lower := strings.ToLower(s) + "-"
	for _, p := range UsernameParams {
		if strings.Contains(lower, "-"+p+"-") {
			return Errorf(EINVALID, "Username may not contain %q: it starts a steering parameter.", "-"+p+"-")
		}
	}
	return nil
}

// MinPasswordLength is the shortest password an account or sub-account may have.
const MinPasswordLength = 8

// ValidatePassword reports whether pw is acceptable as a password.
func ValidatePassword(pw string) error {
	if len(pw) < MinPasswordLength {
		return Errorf(EINVALID, "Password must be at least %d characters long.", MinPasswordLength)
	}
	if len(pw) > 256 {
		return Errorf(EINVALID, "Password must be at most 256 characters long.")
	}
	if strings.ContainsAny(pw, "\x00\r\n") {
		return Errorf(EINVALID, "Password may not contain NUL or line breaks.")
	}
	return nil
}

// ValidateName reports whether s can name a plan or a proxy server: 1–64 of a-z, 0-9, - and _.
func ValidateName(kind, s string) error {
	if s == "" || len(s) > 64 {
		return Errorf(EINVALID, "%s name must be 1 to 64 characters long.", kind)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return Errorf(EINVALID, "%s name %q may contain only a-z, 0-9, - and _.", kind, s)
		}
	}
	return nil
}

// ValidateHostname reports whether s is a DNS host name an account may authorize: at most 253
// characters, dot-separated labels of 1–63 letters, digits and hyphens, not starting or ending with a
// hyphen, at least two labels, and not an IP address.
func ValidateHostname(s string) error {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return Errorf(EINVALID, "Hostname must be 1 to 253 characters long.")
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return Errorf(EINVALID, "Hostname %q must be a fully qualified name such as host.example.org.", s)
	}
	allDigits := true
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return Errorf(EINVALID, "Hostname %q is not a valid host name.", s)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return Errorf(EINVALID, "Hostname %q is not a valid host name.", s)
			}
			if c < '0' || c > '9' {
				allDigits = false
			}
		}
	}
	if allDigits {
		return Errorf(EINVALID, "%q is an IP address, not a hostname: authorize it as an IP.", s)
	}
	return nil
}

// MaxProfileField is the longest email or name a sub-account's profile holds.
const MaxProfileField = 254

// ValidateProfileField checks a sub-account's email, first_name or last_name (field): at most
// MaxProfileField characters without control characters, and an email of the form local@domain.
func ValidateProfileField(field, v string) error {
	if len(v) > MaxProfileField {
		return Errorf(EINVALID, "%s must be at most %d characters long.", field, MaxProfileField)
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f {
			return Errorf(EINVALID, "%s may not contain control characters.", field)
		}
	}
	if field == "email" && v != "" {
		local, domain, ok := strings.Cut(v, "@")
		if !ok || local == "" || !strings.Contains(domain, ".") || strings.ContainsAny(v, " ,;<>") || strings.Contains(domain, "@") {
			return Errorf(EINVALID, "Enter an email address such as name@example.com.")
		}
	}
	return nil
}
