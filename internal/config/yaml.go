package config

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/exitmesh/exitmesh/internal/domain"
)

// nodeError reports a bad value at n. It is a *yaml.TypeError so the decoder records it and goes
// on, and Parse reports every bad value at once; locateErrors turns the position into a key path.
func nodeError(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %s", n.Line, n.Column, msg)}}
}

// addrValue decodes a netip.Addr, reporting a bad address with its position.
type addrValue netip.Addr

func (a *addrValue) UnmarshalYAML(n *yaml.Node) error {
	ip, err := netip.ParseAddr(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return nodeError(n, fmt.Sprintf("invalid IP address %q", n.Value))
	}
	*a = addrValue(ip)
	return nil
}

// prefixValue decodes a netip.Prefix; a bare address is a prefix of its full length.
type prefixValue netip.Prefix

func (p *prefixValue) UnmarshalYAML(n *yaml.Node) error {
	s := n.Value
	if ip, err := netip.ParseAddr(s); err == nil && !strings.Contains(s, "/") {
		s += "/" + strconv.Itoa(ip.BitLen())
	}
	prefix, err := netip.ParsePrefix(s)
	if n.Kind != yaml.ScalarNode || err != nil {
		return nodeError(n, fmt.Sprintf("invalid CIDR %q", n.Value))
	}
	*p = prefixValue(prefix.Masked())
	return nil
}

// exitYAML is the file form of Exit.
type exitYAML struct {
	IP      addrValue `yaml:"ip"`
	URL     string    `yaml:"url"`
	Country string    `yaml:"country"`
	Region  string    `yaml:"region"`
	City    string    `yaml:"city"`
	ASN     asnValue  `yaml:"asn"`
}

// asnValue decodes an autonomous system number written bare (64500) or prefixed (AS64500).
type asnValue uint32

func (a *asnValue) UnmarshalYAML(n *yaml.Node) error {
	asn, ok := domain.ParseASN(n.Value)
	if n.Kind != yaml.ScalarNode || !ok {
		return nodeError(n, fmt.Sprintf("invalid AS number %q: want a number from 1 to 4294967295, such as 64500 or AS64500", n.Value))
	}
	*a = asnValue(asn)
	return nil
}

// UnmarshalYAML decodes an exit. It uses the unmarshal-function form because that keeps the
// decoder's KnownFields setting, so a typo inside an exit is still an error.
func (e *Exit) UnmarshalYAML(unmarshal func(any) error) error {
	var raw exitYAML
	if err := unmarshal(&raw); err != nil {
		return err
	}
	*e = Exit{IP: netip.Addr(raw.IP), URL: raw.URL, Country: raw.Country, Region: raw.Region, City: raw.City, ASN: uint32(raw.ASN)}
	return nil
}

// egressYAML is the file form of Egress.
type egressYAML struct {
	Allow     []prefixValue `yaml:"allow"`
	DenyPorts []int         `yaml:"deny_ports"`
}

// UnmarshalYAML decodes the egress policy over the current value, so an absent deny_ports keeps
// the default while an explicit [] denies no port.
func (e *Egress) UnmarshalYAML(unmarshal func(any) error) error {
	raw := egressYAML{DenyPorts: e.DenyPorts}
	if err := unmarshal(&raw); err != nil {
		return err
	}
	e.Allow = nil
	for _, p := range raw.Allow {
		e.Allow = append(e.Allow, netip.Prefix(p))
	}
	e.DenyPorts = raw.DenyPorts
	return nil
}

// locateErrors rewrites the decoder's "line N: …" messages as "key.path: … (line N)".
func locateErrors(data []byte, err error) error {
	var terr *yaml.TypeError
	if !errors.As(err, &terr) {
		return err // a syntax error: yaml already names the line
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return err
	}
	idx := make(nodeIndex)
	idx.add(&root, "")
	errs := make([]error, len(terr.Errors))
	for i, msg := range terr.Errors {
		errs[i] = errors.New(idx.explain(msg))
	}
	return errors.Join(errs...)
}

// located is a key or value node and the key path that leads to it.
type located struct {
	node  *yaml.Node
	path  string
	isKey bool
}

// nodeIndex holds the nodes of a document by line.
type nodeIndex map[int][]located

func (idx nodeIndex) add(n *yaml.Node, path string) {
	idx[n.Line] = append(idx[n.Line], located{node: n, path: path})
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			idx.add(c, path)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			idx.add(c, fmt.Sprintf("%s[%d]", path, i))
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, value := n.Content[i], n.Content[i+1]
			child := key.Value
			if path != "" {
				child = path + "." + key.Value
			}
			idx[key.Line] = append(idx[key.Line], located{node: key, path: child, isKey: true})
			idx.add(value, child)
		}
	}
}

var (
	lineRE     = regexp.MustCompile(`^line (\d+): (?:column (\d+): )?(.*)$`)
	unknownRE  = regexp.MustCompile("^field (.*) not found in type ")
	repeatedRE = regexp.MustCompile(`^(?:field (.*) already set in type |mapping key "(.*)" already defined)`)
	valueRE    = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into ")
)

// explain prefixes a decoder message with the key path it is about, when that can be found. When
// several nodes on the line fit (flow style), the deepest one is the likeliest culprit.
func (idx nodeIndex) explain(msg string) string {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	line, _ := strconv.Atoi(m[1])
	column, _ := strconv.Atoi(m[2]) // 0 when absent
	text, match := describe(m[3], column)
	var best located
	for _, l := range idx[line] {
		if l.path != "" && match(l) && len(l.path) > len(best.path) {
			best = l
		}
	}
	if best.path == "" {
		return fmt.Sprintf("line %d: %s", line, text)
	}
	return fmt.Sprintf("%s: %s (line %d)", best.path, text, line)
}

// describe rewords a decoder message and returns a test for the node it is about.
func describe(text string, column int) (string, func(located) bool) {
	if column > 0 { // our own nodeError
		return text, func(l located) bool { return !l.isKey && l.node.Column == column }
	}
	if m := unknownRE.FindStringSubmatch(text); m != nil {
		return "unknown key", keyNamed(m[1])
	}
	if m := repeatedRE.FindStringSubmatch(text); m != nil {
		return "key repeated", keyNamed(m[1] + m[2])
	}
	m := valueRE.FindStringSubmatch(text)
	switch {
	case m == nil:
		return text, func(located) bool { return false }
	case m[2] == "": // a sequence or mapping where a scalar belongs
		kind := map[string]yaml.Kind{"seq": yaml.SequenceNode, "map": yaml.MappingNode}[m[1]]
		return text, func(l located) bool { return !l.isKey && l.node.Kind == kind }
	default:
		value := strings.TrimSuffix(m[2], "...") // yaml shortens long values to 7 characters + "..."
		return text, func(l located) bool { return !l.isKey && strings.HasPrefix(l.node.Value, value) }
	}
}

func keyNamed(name string) func(located) bool {
	return func(l located) bool { return l.isKey && l.node.Value == name }
}
