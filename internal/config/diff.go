package config

import (
	"reflect"
	"strings"
)

// ChangedKeys returns the key paths whose values differ between a and b, in file order, such as
// ["api.listen", "timeouts.idle", "proxies"]. A section is compared key by key; a list or a scalar
// is one value, so a change anywhere in proxies is reported as "proxies".
func ChangedKeys(a, b *Config) []string {
	var keys []string
	changedKeys(&keys, "", reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem())
	return keys
}

var configPkg = reflect.TypeFor[Config]().PkgPath()

func changedKeys(keys *[]string, prefix string, a, b reflect.Value) {
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		key := prefix + name
		fa, fb := a.Field(i), b.Field(i)
		// Sections are this package's structs; other structs (netip.Addr) are single values.
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == configPkg {
			changedKeys(keys, key+".", fa, fb)
			continue
		}
		if !sameValue(fa, fb) {
			*keys = append(*keys, key)
		}
	}
}

// sameValue is reflect.DeepEqual, except that an absent list equals an empty one (`allow: []`).
func sameValue(a, b reflect.Value) bool {
	if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}
