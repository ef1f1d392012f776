package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/outposthq/outpost/bench/internal/procstat"
)

// treeSample is one reading of a process and its descendants, in KiB.
type treeSample struct {
	// rss is the root process's own VmRSS.
	rss int64
	// treeRSS and treePSS sum Rss and Pss over the whole tree: RSS counts
	// the pages processes share (the tofu binary) once per process, PSS
	// divides them between the processes mapping them.
	treeRSS, treePSS int64
	// tofus is how many descendants named tofu* were alive.
	tofus int
}

// treeSampler reads a process tree's memory every interval until stopped.
type treeSampler struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []treeSample
}

// sampleTree starts sampling the tree under pid every interval. Stop it
// with stop.
func sampleTree(ctx context.Context, pid int, every time.Duration) *treeSampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &treeSampler{cancel: cancel}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if m, err := readTree(pid); err == nil {
				s.mu.Lock()
				s.samples = append(s.samples, m)
				s.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the samples taken.
func (s *treeSampler) stop() []treeSample {
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// readTree reads the memory of pid and every descendant alive now.
func readTree(pid int) (treeSample, error) {
	root, err := procstat.ReadMemory(pid)
	if err != nil {
		return treeSample{}, err
	}
	out := treeSample{rss: root.RSS}
	procs, err := processes()
	if err != nil {
		return treeSample{}, err
	}
	children := map[int][]int{}
	for p, info := range procs {
		children[info.ppid] = append(children[info.ppid], p)
	}
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = append(queue[1:], children[p]...)
		rss, pss, err := readRollup(p)
		if err != nil {
			continue // ended since the listing
		}
		out.treeRSS += rss
		out.treePSS += pss
		if p != pid && strings.HasPrefix(procs[p].comm, "tofu") {
			out.tofus++
		}
	}
	return out, nil
}

type procInfo struct {
	ppid int
	comm string
}

// processes lists every process's parent and command name.
func processes() (map[int]procInfo, error) {
	paths, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	out := make(map[int]procInfo, len(paths))
	for _, path := range paths {
		b, err := os.ReadFile(path) //nolint:gosec // /proc
		if err != nil {
			continue
		}
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		f := strings.Fields(s[closing+1:])
		if len(f) < 2 {
			continue
		}
		pid, err1 := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		ppid, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			continue
		}
		out[pid] = procInfo{ppid: ppid, comm: s[open+1 : closing]}
	}
	return out, nil
}

// readRollup reads Rss and Pss of a process from /proc/<pid>/smaps_rollup,
// in KiB.
func readRollup(pid int) (rss, pss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "Rss" && k != "Pss") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("smaps_rollup of %d: %s: %w", pid, k, err)
		}
		if k == "Rss" {
			rss = n
		} else {
			pss = n
		}
	}
	return rss, pss, sc.Err()
}

// childrenCPU returns the CPU time (user + system) of a process's children
// that it has waited for: the tofu processes an agent ran and reaped.
func childrenCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// After the command name: cutime is field 16 and cstime 17.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	cu, err1 := strconv.ParseInt(f[13], 10, 64)
	cs, err2 := strconv.ParseInt(f[14], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	// USER_HZ is 100 on every Linux the benchmark targets.
	return time.Duration(cu+cs) * 10 * time.Millisecond, nil
}
