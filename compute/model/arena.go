package model

// Spare session buffers. A relay opens a session per request and closes it
// when the request ends; each one's KV cache and scratch buffers were new
// allocations, and whatever part of them the Go runtime had to take from
// the kernel (fresh spans, or pages its scavenger handed back while the
// relay idled) costs a page fault per 4 KiB page on first touch: 13–18 µs
// each on the 2-vCPU VMs of docs/PERFORMANCE.md, ~1.5 ms if all 100 pages
// of a 128-position prefill of stories260K's [0, 3) are new, half of the
// pass. A closed session's buffers are kept instead, up to maxSpares per
// shard and maxSpareBytes each (an eighth of Limits.MemoryBudget together,
// with one), and the next session grows into them. Nothing in them is read
// before it is written again: a KV position is written before attention
// reads it (forward.go), scratch rows before the products read them, so
// results are bit-identical with fresh buffers.

// maxSpares is how many closed sessions' buffers a shard keeps.
const maxSpares = 2

// maxSpareBytes is the largest KV cache plus scratch kept from one session;
// with a Limits.MemoryBudget, spares together keep at most an eighth of it
// besides.
const maxSpareBytes = 64 << 20

// arena is one closed session's buffers.
type arena struct {
	k, v [][]float32 // per shard layer, any length, spare capacity
	scr  *scratch
}

func (a *arena) bytes() int64 {
	var n int64
	for i := range a.k {
		n += 4 * int64(cap(a.k[i])+cap(a.v[i]))
	}
	sc := a.scr
	for _, b := range [][]float32{sc.x, sc.xb, sc.q, sc.k, sc.v, sc.att, sc.tmp, sc.hb, sc.hb2, sc.cos, sc.sn} {
		n += 4 * int64(cap(b))
	}
	return n
}

// takeSpare gives ss a spare arena's buffers, or empty ones. Called with
// s.acct held.
func (s *Shard) takeSpare(ss *Session) {
	n := len(s.layers)
	if k := len(s.spares); k > 0 {
		a := s.spares[k-1]
		s.spares[k-1] = nil
		s.spares = s.spares[:k-1]
		ss.k, ss.v, ss.scr = a.k, a.v, a.scr
		for i := range ss.k {
			ss.k[i], ss.v[i] = ss.k[i][:0], ss.v[i][:0]
		}
		return
	}
	ss.k, ss.v, ss.scr = make([][]float32, n), make([][]float32, n), new(scratch)
}

// putSpare keeps a closing session's buffers for the next session, if there
// is room. Called with s.acct held and ss.mu held.
func (s *Shard) putSpare(ss *Session) {
	if s.noSpares || len(s.spares) >= maxSpares || ss.k == nil {
		return
	}
	a := &arena{k: ss.k, v: ss.v, scr: ss.scr}
	n := a.bytes()
	if n > maxSpareBytes {
		return
	}
	if b := s.limits.MemoryBudget; b > 0 {
		for _, o := range s.spares {
			n += o.bytes()
		}
		if n > b/8 {
			return
		}
	}
	s.spares = append(s.spares, a)
}
