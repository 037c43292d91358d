package httphead

import "bytes"

// A forwarding proxy that rebuilds heads from net/http's header map sends fields in a new order
// every time, and in canonical case: a fingerprint. These helpers let it walk a head's field lines
// in the order and case they arrived, over bytes that a Parser accepted (a request) or that
// ResponseHead found strict (an answer): every line ends in CRLF and none is folded, so a line is
// exactly what net/http parsed as one field.

// Field is one field line of a head.
type Field struct {
	Name []byte // as sent, case included
	Line []byte // the whole line without its CRLF, to send on byte for byte
}

// Value returns the field's value without the optional whitespace around it.
func (f Field) Value() []byte {
	v := f.Line[len(f.Name)+1:]
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// Is tells whether the field's name is lower, an ASCII lower-case name, in any case.
func (f Field) Is(lower string) bool { return asciiEqualFold(f.Name, lower) }

// HasPrefix tells whether the field's name starts with lower, an ASCII lower-case prefix, in any case.
func (f Field) HasPrefix(lower string) bool {
	return len(f.Name) >= len(lower) && asciiEqualFold(f.Name[:len(lower)], lower)
}

// Fields walks the field lines of a checked head:
//
//	for fs := httphead.FieldsOf(head); fs.Next(); {
//		use(fs.Field)
//	}
type Fields struct {
	Field
	head []byte
	off  int
}

// FieldsOf returns a walk over the field lines of head, which a Parser accepted or ResponseHead
// found strict, from its first byte to its empty line.
func FieldsOf(head []byte) Fields {
	return Fields{head: head, off: bytes.IndexByte(head, '\n') + 1}
}

// Next moves to the next field line; false at the head's empty line or end.
func (fs *Fields) Next() bool {
	if fs.off <= 0 || fs.off >= len(fs.head) {
		return false
	}
	i := bytes.IndexByte(fs.head[fs.off:], '\n')
	if i < 1 {
		return false
	}
	line := fs.head[fs.off : fs.off+i-1]
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return false
	}
	fs.off += i + 1
	fs.Field = Field{Name: line[:colon], Line: line}
	return true
}

// ResponseHead finds the end of an answer's head at the start of buf. It returns the head's length
// once its empty line is in buf (0 while more is needed), and ok false as soon as the head is not
// strict: a line ending in a bare LF, obs-fold, a field name that is not a token or a space before
// its colon, a control character in a value, a status line that is not HTTP/1.x and three digits.
// net/http tolerates those; a proxy relaying the head line by line must not, so it leaves such a
// head to net/http's parser and writes it from net/http's map instead.
func ResponseHead(buf []byte) (n int, ok bool) {
	off := 0
	for first := true; ; first = false {
		i := bytes.IndexByte(buf[off:], '\n')
		if i < 0 {
			return 0, true
		}
		if i == 0 || buf[off+i-1] != '\r' {
			return 0, false
		}
		line := buf[off : off+i-1]
		off += i + 1
		switch {
		case first:
			if !statusLine(line) {
				return 0, false
			}
		case len(line) == 0:
			return off, true
		case !strictField(line):
			return 0, false
		}
	}
}

// statusLine checks HTTP/1.x SP 3DIGIT [SP reason].
func statusLine(l []byte) bool {
	if len(l) < 12 || string(l[:7]) != "HTTP/1." || !isDigit(l[7]) || l[8] != ' ' ||
		!isDigit(l[9]) || !isDigit(l[10]) || !isDigit(l[11]) {
		return false
	}
	if len(l) > 12 && l[12] != ' ' {
		return false
	}
	for _, c := range l[12:] {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func strictField(line []byte) bool {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 || !isToken(line[:colon]) {
		return false
	}
	for _, c := range line[colon+1:] {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
