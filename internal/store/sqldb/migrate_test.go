package sqldb

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestReadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		want    []int64
		wantErr string
	}{
		{"sorted by version", fstest.MapFS{"0002_b.sql": file("B"), "0001_a.sql": file("A"), "0010_c.sql": file("C")},
			[]int64{1, 2, 10}, ""},
		{"bad name", fstest.MapFS{"0001_a.sql": file("A"), "init.sql": file("")}, nil, "NNNN_name.sql"},
		{"upper case", fstest.MapFS{"0001_Init.sql": file("")}, nil, "NNNN_name.sql"},
		{"same version", fstest.MapFS{"0001_a.sql": file(""), "0001_b.sql": file("")}, nil, "same version"},
		{"none", fstest.MapFS{}, nil, "no migrations"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := readMigrations(tt.fsys)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, m := range ms {
				got = append(got, m.version)
			}
			if !slices.Equal(got, tt.want) || ms[0].sql != "A" {
				t.Errorf("versions = %v (first body %q), want %v (first body \"A\")", got, ms[0].sql, tt.want)
			}
		})
	}
}
