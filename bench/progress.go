package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether w is a terminal (an *os.File whose descriptor
// answers the terminal ioctl).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Progress draws a one-line progress bar for long phases. A nil *Progress
// draws nothing.
type Progress struct {
	w     io.Writer
	mu    sync.Mutex
	last  time.Time
	phase string
}

// NewProgress returns a progress bar on w, or nil when w is nil.
func NewProgress(w io.Writer) *Progress {
	if w == nil {
		return nil
	}
	return &Progress{w: w}
}

// Update draws phase at done of total (total 0: no bar), at most every
// 100 ms unless the phase changed or it is complete.
func (p *Progress) Update(phase string, done, total int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if phase == p.phase && now.Sub(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.phase, p.last = phase, now
	const width = 30
	if total <= 0 {
		fmt.Fprintf(p.w, "\r\x1b[K%s...", phase)
		return
	}
	n := min(width*done/total, width)
	fmt.Fprintf(p.w, "\r\x1b[K[%s%s] %3d%% %s", strings.Repeat("#", n), strings.Repeat(" ", width-n), 100*done/total, phase)
}

// Done clears the bar's line.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, "\r\x1b[K")
	p.phase = ""
}
