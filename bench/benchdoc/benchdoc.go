// Package benchdoc is what the load harness (bench/harness) and the soak (bench/soak) share to write
// their results into the docs: the section of a Markdown document that a run rewrites, the machine
// and commit a run measured, and numbers as people read them.
package benchdoc

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// Section is the part of a document between two markers that each run rewrites; the rest of the
// document is written by hand.
type Section struct {
	Key    string // names the markers: "<!-- Key:results:begin ..."
	Writer string // the command that writes it, named in the begin marker
	Title  string // the heading of a document made from nothing
}

func (s Section) markers() (begin, end string) {
	return "<!-- " + s.Key + ":results:begin (written by " + s.Writer + "; edits here are lost) -->",
		"<!-- " + s.Key + ":results:end -->"
}

// Write replaces the section in the document at path with results, or creates the document.
func (s Section) Write(path, results string) error {
	begin, end := s.markers()
	section := begin + "\n" + results + end
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i < 0 || j < i {
		text = "# " + s.Title + "\n\n## Results\n\n" + section + "\n"
	} else {
		text = text[:i] + section + text[j+len(end):]
	}
	return os.WriteFile(path, []byte(text), 0o644)
}

// Machine is where a run happened and what it measured.
type Machine struct {
	CPU, Memory, Kernel, OS, Go, Commit string
	Cores                               int
}

// Describe reads the machine from /proc and /etc/os-release and the commit from git; the commit is
// marked dirty when anything but doc (which the run itself rewrites) has uncommitted changes.
func Describe(doc string) Machine {
	m := Machine{Go: runtime.Version(), Cores: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.TrimPrefix(FirstLine(string(b)), "MemTotal:"), "%d", &kb)
		m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(strings.TrimSpace(v), `"`)
			}
		}
	}
	m.Commit = strings.TrimSpace(Output("git", "rev-parse", "--short", "HEAD"))
	if strings.TrimSpace(Output("git", "status", "--porcelain", "--", ".", ":!"+doc)) != "" {
		m.Commit += " (with uncommitted changes)"
	}
	return m
}

// LoadAverage is the machine's 1, 5 and 15 minute load averages, "?" when unknown.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// CPUTicks is the clock ticks of all CPUs so far, from /proc/stat (zero when unknown).
type CPUTicks struct {
	Busy  float64 // neither idle nor waiting for I/O; steal included
	Steal float64 // taken by the hypervisor for other machines
	Total float64
}

// ReadCPUTicks reads the machine's CPU ticks so far.
func ReadCPUTicks() CPUTicks {
	var c CPUTicks
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return c
	}
	f := strings.Fields(FirstLine(string(b))) // cpu user nice system idle iowait irq softirq steal …
	if len(f) < 9 {
		return c
	}
	for i, v := range f[1:9] { // guest time is already counted in user
		n, _ := strconv.ParseFloat(v, 64)
		c.Total += n
		if i != 3 && i != 4 { // idle, iowait
			c.Busy += n
		}
		if i == 7 {
			c.Steal = n
		}
	}
	return c
}

// StealShare is the share of the CPU time from since to now that the hypervisor gave to other
// machines: a run with much of it measured a slower machine than its description says.
func StealShare(since CPUTicks) float64 {
	now := ReadCPUTicks()
	if now.Total <= since.Total {
		return 0
	}
	return (now.Steal - since.Steal) / (now.Total - since.Total)
}

// Output runs a command and returns what it printed, standard error included; "" if it cannot run.
func Output(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	return string(out)
}

// FirstLine is the first line of s, without surrounding space.
func FirstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(line)
}

// Thousands writes n with commas between groups of three digits: 1,234,567.
func Thousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
