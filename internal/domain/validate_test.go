package domain

import "testing"

func TestValidateUsername(t *testing.T) {
	good := []string{"alice", "a", "Alice.B_c@d-e", "x1", "bob-smith", "sessions-ok", "acc-ount", "cc-first", "city-"}
	bad := []string{"", "-alice", ".a", "al ice", "al:ice", "alice-session-1", "a-COUNTRY-us", "x-ip-1", "é", string(make([]byte, 65)),
		"shop-cc-eu", "a-sessid-1", "a-SessTime-1", "a-sessmode-x", "a-region-x", "acme-city-bot", "x-asn-1", "last-asn"}
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

func TestPlaces(t *testing.T) {
	regions := map[string]string{"US-CA": "US-CA", "us_ca": "US-CA", "JP-13": "JP-13", "fr-75c": "FR-75C",
		"USCA": "", "U-CA": "", "US-": "", "US-CALI": "", "US CA": "", "1S-CA": "", "US-C.": ""}
	for in, want := range regions {
		if got, ok := NormalizeRegion(in); got != want || ok != (want != "") {
			t.Errorf("NormalizeRegion(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	cities := map[string]string{"los_angeles": "los_angeles", "Los_Angeles": "los_angeles", "x1": "x1",
		"": "", "los angeles": "", "los-angeles": "", "são_paulo": "", "a,b": ""}
	for in, want := range cities {
		if got, ok := NormalizeCity(in); got != want || ok != (want != "") {
			t.Errorf("NormalizeCity(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	asns := map[string]uint32{"64500": 64500, "AS64500": 64500, "as1": 1, "4294967295": 4294967295,
		"0": 0, "AS": 0, "4294967296": 0, "-1": 0, "+1": 0, "0x10": 0, "1_000": 0, "AS AS1": 0, "": 0}
	for in, want := range asns {
		if got, ok := ParseASN(in); got != want || ok != (want != 0) {
			t.Errorf("ParseASN(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
}
