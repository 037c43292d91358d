package domain

import "testing"

func TestValidateUsername(t *testing.T) {
	good := []string{"alice", "a", "Alice.B_c@d-e", "x1", "bob-smith", "sessions-ok"}
	bad := []string{"", "-alice", ".a", "al ice", "al:ice", "alice-session-1", "a-COUNTRY-us", "x-ip-1", "é", string(make([]byte, 65))}
	for _, u := range good {
		if err := ValidateUsername(u); err != nil {
			t.Errorf("ValidateUsername(%q) = %v, want nil", u, err)
		}
	}
	for _, u := range bad {
		if err := ValidateUsername(u); ErrorCode(err) != EINVALID {
			t.Errorf("ValidateUsername(%q) = %v, want EINVALID", u, err)
		}
	}
}

func TestValidatePassword(t *testing.T) {
	for pw, ok := range map[string]bool{"12345678": true, "1234567": false, "pass\nword1": false, string(make([]byte, 257)): false} {
		if err := ValidatePassword(pw); (err == nil) != ok {
			t.Errorf("ValidatePassword(%q) = %v, want ok=%v", pw, err, ok)
		}
	}
}

func TestErrorCodeAndMessage(t *testing.T) {
	if ErrorCode(nil) != "" || ErrorCode(Errorf(ELIMIT, "x")) != ELIMIT || ErrorCode(errString("boom")) != EINTERNAL {
		t.Error("ErrorCode mapping wrong")
	}
	if ErrorMessage(errString("SELECT secret FROM t")) != "Internal error." {
		t.Error("internal error text leaked")
	}
}

type errString string

func (e errString) Error() string { return string(e) }
