package lab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a listener running as a child process, its output going to a log file.
type Process struct {
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{}
	err     error

	peakMu sync.Mutex
	peak   Memory // the highest VmHWM, RssAnon and RssFile sampled while the child ran
}

// rssSampleInterval is how often a child's memory is sampled from /proc.
const rssSampleInterval = 20 * time.Millisecond

// StartProcess starts cmd with its standard output and error appended to logPath.
func StartProcess(cmd *exec.Cmd, logPath string) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open child log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &Process{cmd: cmd, logPath: logPath, logFile: f, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	go p.sampleMemory()
	return p, nil
}

// sampleMemory records the child's peak memory until it exits. getrusage's ru_maxrss is no
// use here: on Linux a child started by a large parent can report the parent's high-water mark.
func (p *Process) sampleMemory() {
	t := time.NewTicker(rssSampleInterval)
	defer t.Stop()
	for {
		if m, err := ReadMemory(p.Pid()); err == nil {
			p.peakMu.Lock()
			p.peak.Peak = max(p.peak.Peak, m.Peak, m.RSS)
			p.peak.Anon = max(p.peak.Anon, m.Anon)
			p.peak.File = max(p.peak.File, m.File)
			p.peak.RSS = max(p.peak.RSS, m.RSS)
			p.peakMu.Unlock()
		}
		select {
		case <-p.done:
			return
		case <-t.C:
		}
	}
}

// PeakMemory returns the highest memory figures sampled while the child ran.
func (p *Process) PeakMemory() Memory {
	p.peakMu.Lock()
	defer p.peakMu.Unlock()
	return p.peak
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the child to exit and returns its error (nil for exit code 0).
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Kill sends SIGKILL and waits for the child to be gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to grace for a clean exit, then kills the child. It returns
// the child's exit error, or an error saying it had to be killed.
func (p *Process) Stop(grace time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("child %d did not stop within %s of SIGTERM; killed", p.Pid(), grace)
	}
}

// PeakRSS returns the child's peak resident set size in bytes once it has exited: the highest
// VmHWM sampled from /proc every 20 ms while it ran.
func (p *Process) PeakRSS() (int64, error) {
	select {
	case <-p.done:
	default:
		return 0, errors.New("child still running")
	}
	peak := p.PeakMemory().Peak
	if peak == 0 {
		return 0, errors.New("no memory sample of the child (no /proc, or it exited at once)")
	}
	return peak, nil
}

// Memory is a running process's resident memory, from /proc/<pid>/status, in bytes.
type Memory struct {
	RSS, Anon, File, Peak int64
}

// Memory reads the running child's resident memory.
func (p *Process) Memory() (Memory, error) { return ReadMemory(p.Pid()) }

// ReadMemory reads a process's VmRSS, RssAnon, RssFile and VmHWM from /proc.
func ReadMemory(pid int) (Memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	var m Memory
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmRSS":
			dst = &m.RSS
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		case "VmHWM":
			dst = &m.Peak
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("parse %s of process %d: %w", key, pid, err)
		}
		*dst = kb * 1024
	}
	return m, nil
}

// LogTail returns the last n lines of the child's log.
func (p *Process) LogTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
