package proxy

import (
	"bufio"
	"net/http"
	"strconv"

	"golang.org/x/net/http/httpguts"

	"github.com/exitmesh/exitmesh/internal/httphead"
)

// Faithful forwarding: header fields cross the proxy in the order and letter case their sender
// used, duplicates included, because a head rebuilt from net/http's map (random order, canonical
// case) is a fingerprint anti-bot systems read. The fields come from the raw heads — the request
// head the connection's Parser accepted, the answer head peeked from the origin connection's buffer
// — while net/http's parse of the same bytes still decides the framing. The fields the proxy writes
// itself (Host, framing, an upgrade's Connection, TE) take the place and the name's case of the
// sender's field they replace; X-ProxyMesh-IP and the framing an answer did not have are added after
// the origin's fields (docs/DECISIONS.md).

// writeRequestHead writes the request line and the fields the origin gets.
func (x *exchange) writeRequestHead(w *bufio.Writer, chunked bool) {
	r := x.r
	head := x.cc.requestHead()
	w.WriteString(r.Method)
	w.WriteByte(' ')
	w.WriteString(originForm(r.RequestURI))
	w.WriteString(" HTTP/1.1\r\n")
	if !r.ProtoAtLeast(1, 1) && !hasField(head, "host") { // HTTP/1.0 may leave Host out
		w.WriteString("Host: ")
		w.WriteString(r.Host)
		w.WriteString("\r\n")
	}
	conn := r.Header["Connection"]
	trailers := httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers")
	var te, connection, upgrade bool // written already: a repeated field is written once
	for fs := httphead.FieldsOf(head); fs.Next(); {
		f := fs.Field
		switch fieldFate(f, conn, true) {
		case fieldKeep:
			writeLine(w, f)
		case fieldHost: // the target's authority, even when the client's Host named the proxy
			writeField(w, f, r.Host)
		case fieldLength:
			if !chunked && (r.ContentLength > 0 || x.length) {
				w.Write(f.Name)
				w.WriteString(": ")
				w.Write(strconv.AppendInt(w.AvailableBuffer(), max(r.ContentLength, 0), 10))
				w.WriteString("\r\n")
			}
		case fieldCoding:
			if chunked {
				writeField(w, f, "chunked")
			}
		case fieldTE:
			if trailers && !te { // the one TE value an end-to-end client may rely on
				te = true
				writeField(w, f, "trailers")
			}
		case fieldConnection:
			if x.upgrade != "" && !connection {
				connection = true
				writeField(w, f, "Upgrade")
			}
		case fieldUpgrade:
			if x.upgrade != "" && !upgrade {
				upgrade = true
				writeLine(w, f)
			}
		}
	}
	w.WriteString("\r\n")
}

// hasField tells whether a checked head has a field named lower.
func hasField(head []byte, lower string) bool {
	for fs := httphead.FieldsOf(head); fs.Next(); {
		if fs.Is(lower) {
			return true
		}
	}
	return false
}

// peekAnswerHead waits until the origin's next answer head is in the origin connection's buffer
// and copies it before net/http's parser consumes it; it returns the head's length. It returns 0,
// and the answer is written from net/http's map in its order, when the head is not strict
// (httphead.ResponseHead) or is larger than the buffer: growing every origin connection's buffer
// for the rare large head would cost memory on each idle connection. A read error is left for
// net/http's parser to meet.
func (x *exchange) peekAnswerHead() int {
	br := x.oc.R
	for {
		buf, _ := br.Peek(br.Buffered())
		n, ok := httphead.ResponseHead(buf)
		switch {
		case !ok:
			return 0
		case n > 0:
			x.cc.saveAnswerHead(buf[:n])
			return n
		case br.Buffered() == br.Size():
			return 0
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return 0
		}
	}
}

// answerFraming is how the proxy frames an answer's body for the client.
type answerFraming struct {
	length  int64 // Content-Length to write, or -1
	chunked bool
}

// writeAnswerFields writes the fields of a final answer the client gets, X-ProxyMesh-IP and the
// proxy's framing included; not Connection, which the caller adds.
func (x *exchange) writeAnswerFields(w *bufio.Writer, resp *http.Response, fr answerFraming) {
	var length, coding, trailer bool // written already
	if head := x.cc.answerHead(); head != nil {
		conn := resp.Header["Connection"]
		for fs := httphead.FieldsOf(head); fs.Next(); {
			f := fs.Field
			switch fieldFate(f, conn, false) {
			case fieldKeep:
				writeLine(w, f)
			case fieldLength:
				if fr.length >= 0 && !length {
					length = true
					w.Write(f.Name)
					w.WriteString(": ")
					w.Write(strconv.AppendInt(w.AvailableBuffer(), fr.length, 10))
					w.WriteString("\r\n")
				}
			case fieldCoding:
				if fr.chunked && !coding {
					coding = true
					writeField(w, f, "chunked")
				}
			case fieldTrailer: // net/http read the trailer fields it names only from a chunked body
				if fr.chunked && len(resp.Trailer) > 0 {
					trailer = true
					writeLine(w, f)
				}
			}
		}
	} else {
		h := resp.Header
		removeHopHeaders(h)
		stripExitHeaders(h)
		delete(h, "Content-Length")
		writeHeader(w, h)
	}
	writeExitHeaders(w, x.choice.Exit.IP, x.choice.NotFound)
	if fr.length >= 0 && !length {
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(w.AvailableBuffer(), fr.length, 10))
		w.WriteString("\r\n")
	}
	if fr.chunked && !coding {
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if fr.chunked && len(resp.Trailer) > 0 && !trailer {
		w.WriteString("Trailer: " + trailerNames(resp.Trailer) + "\r\n")
	}
}

// writeInformational writes the fields of a 1xx answer (Early Hints and the like).
func (x *exchange) writeInformational(w *bufio.Writer, resp *http.Response) {
	head := x.cc.answerHead()
	if head == nil {
		removeHopHeaders(resp.Header)
		stripExitHeaders(resp.Header)
		writeHeader(w, resp.Header)
		return
	}
	conn := resp.Header["Connection"]
	for fs := httphead.FieldsOf(head); fs.Next(); {
		f := fs.Field
		if a := fieldFate(f, conn, false); a == fieldKeep || a == fieldLength {
			writeLine(w, f)
		}
	}
}

// writeSwitchFields writes the fields of a 101 answer accepting the upgrade to protocol got,
// X-ProxyMesh-IP included.
func (x *exchange) writeSwitchFields(w *bufio.Writer, resp *http.Response, got string) {
	head := x.cc.answerHead()
	if head == nil {
		w.WriteString("Connection: Upgrade\r\nUpgrade: " + got + "\r\n")
		h := resp.Header
		removeHopHeaders(h)
		setExitHeaders(h, x.choice.Exit.IP, x.choice.NotFound)
		writeHeader(w, h)
		return
	}
	conn := resp.Header["Connection"]
	var connection, upgrade bool // written already
	for fs := httphead.FieldsOf(head); fs.Next(); {
		f := fs.Field
		switch fieldFate(f, conn, false) {
		case fieldKeep, fieldLength:
			writeLine(w, f)
		case fieldConnection:
			if !connection {
				connection = true
				writeField(w, f, "Upgrade")
			}
		case fieldUpgrade: // its first line is the protocol got
			if !upgrade {
				upgrade = true
				writeLine(w, f)
			}
		}
	}
	if !connection {
		w.WriteString("Connection: Upgrade\r\n")
	}
	writeExitHeaders(w, x.choice.Exit.IP, x.choice.NotFound)
}
