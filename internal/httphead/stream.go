package httphead

import "bytes"

// Stream follows the requests of one connection to a server that neither tunnels nor upgrades: it
// checks each head with a Parser and steps over each body by the framing that head declared, so
// that it finds the next head where the server's own parser will.
type Stream struct {
	lim    Config
	p      Parser
	head   []byte // the head being read, from its first byte
	state  streamState
	remain int64  // bytes left of a body or chunk
	line   []byte // a chunk-size or trailer line being read
	heads  int64  // heads found good so far
}

type streamState uint8

const (
	inHead      streamState = iota
	inBody                  // remain bytes of a Content-Length body
	inChunkSize             // a chunk-size line
	inChunkData             // remain bytes of a chunk
	inChunkEnd              // the CRLF after a chunk's data
	inTrailer               // trailer lines up to the empty one
)

// maxChunkLine bounds a chunk-size or trailer line, as net/http's chunked reader does.
const maxChunkLine = 4096

var (
	errChunkLine = refuse(400, "malformed chunked body")
	errChunkSize = refuse(400, "chunk size too large")
)

// NewStream returns a Stream at the start of a connection.
func NewStream(lim Config) *Stream {
	s := &Stream{lim: lim.withDefaults()}
	s.p.Reset(s.lim)
	return s
}

// Heads is how many request heads have been found good.
func (s *Stream) Heads() int64 { return s.heads }

// Feed follows the next bytes of the connection. On a refusal it also returns how many bytes of b
// came before the refused head started (or before the bad body byte), which a server may still read.
func (s *Stream) Feed(b []byte) (int, *Error) {
	done := 0
	for done < len(b) {
		n, err := s.step(b[done:])
		if err != nil {
			return done, err
		}
		done += n
	}
	return len(b), nil
}

// step consumes the start of b in the current state.
func (s *Stream) step(b []byte) (int, *Error) {
	switch s.state {
	case inHead:
		return s.stepHead(b)
	case inBody, inChunkData:
		n := int(min(int64(len(b)), s.remain))
		s.remain -= int64(n)
		switch {
		case s.remain > 0:
		case s.state == inBody:
			s.state = inHead
		default:
			s.state = inChunkEnd
		}
		return n, nil
	case inChunkEnd:
		return s.stepChunkEnd(b)
	default:
		return s.stepLine(b)
	}
}

func (s *Stream) stepHead(b []byte) (int, *Error) {
	before := len(s.head)
	take := min(len(b), s.lim.MaxBytes-before)
	s.head = append(s.head, b[:take]...)
	n, h, err := s.p.Feed(s.head)
	if err != nil {
		return 0, err
	}
	if h == nil {
		return take, nil
	}
	s.heads++
	switch {
	case h.Chunked:
		s.state = inChunkSize
	case h.Length > 0:
		s.state, s.remain = inBody, h.Length
	}
	s.head = s.head[:0]
	s.p.Reset(s.lim)
	return n - before, nil
}

// stepChunkEnd expects the CRLF that ends a chunk's data, which may arrive a byte at a time.
func (s *Stream) stepChunkEnd(b []byte) (int, *Error) {
	want := "\r\n"[len(s.line):]
	n := min(len(b), len(want))
	if string(b[:n]) != want[:n] {
		return 0, errChunkLine
	}
	s.line = append(s.line, b[:n]...)
	if len(s.line) == 2 {
		s.line, s.state = s.line[:0], inChunkSize
	}
	return n, nil
}

// stepLine reads a chunk-size or trailer line up to its LF, then acts on it.
func (s *Stream) stepLine(b []byte) (int, *Error) {
	i := bytes.IndexByte(b, '\n')
	n := len(b)
	if i >= 0 {
		n = i + 1
	}
	if len(s.line)+n > maxChunkLine {
		return 0, errChunkLine
	}
	s.line = append(s.line, b[:n]...)
	if i < 0 {
		return n, nil
	}
	line := s.line
	s.line = s.line[:0]
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return 0, errBareLF
	}
	line = line[:len(line)-2]
	for _, c := range line {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return 0, errChunkLine
		}
	}
	if s.state == inTrailer {
		if len(line) == 0 {
			s.state = inHead
		}
		return n, nil
	}
	size, err := chunkSize(line)
	if err != nil {
		return 0, err
	}
	if size == 0 {
		s.state = inTrailer
	} else {
		s.state, s.remain = inChunkData, size
	}
	return n, nil
}

// chunkSize reads 1*HEXDIG [ BWS ";" chunk-ext ] (RFC 9112 §7.1).
func chunkSize(line []byte) (int64, *Error) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		d, ok := hexDigit(line[i])
		if !ok {
			break
		}
		if i >= 15 {
			return 0, errChunkSize
		}
		n = n<<4 | int64(d)
	}
	if i == 0 {
		return 0, errChunkLine
	}
	rest := bytes.TrimLeft(line[i:], " \t")
	if len(rest) > 0 && rest[0] != ';' {
		return 0, errChunkLine
	}
	return n, nil
}

func hexDigit(c byte) (byte, bool) {
	switch l := c | 0x20; {
	case isDigit(c):
		return c - '0', true
	case 'a' <= l && l <= 'f':
		return l - 'a' + 10, true
	}
	return 0, false
}
