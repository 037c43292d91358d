package sqldb

import (
	"math/rand/v2"
	"testing"
)

// TestByID: a row is found by its id whatever order the lookups come in, and an id not loaded is
// not found — the loaders attach a row only to an owner they loaded.
func TestByID(t *testing.T) {
	type row struct{ id int64 }
	var rows []row
	for id := int64(1); id <= 200; id += 1 + id%3 { // gaps, as deletions leave
		rows = append(rows, row{id})
	}
	rand.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	index := newByID(rows, func(r *row) int64 { return r.id })
	want := map[int64]bool{}
	for _, r := range rows {
		want[r.id] = true
	}
	lookups := []int64{}
	for id := int64(-1); id <= 202; id++ { // in order, as a table read in insertion order
		lookups = append(lookups, id, id)
	}
	for range 500 { // and out of order
		lookups = append(lookups, rand.Int64N(205)-2)
	}
	for _, id := range lookups {
		i, ok := index.find(id)
		if ok != want[id] {
			t.Fatalf("find(%d) found = %v, want %v", id, ok, want[id])
		}
		if ok && rows[i].id != id {
			t.Fatalf("find(%d) = row %d, whose id is %d", id, i, rows[i].id)
		}
	}
}
