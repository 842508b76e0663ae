package openai

import "strings"

// stopper applies stop sequences to a text stream. Text that could be the
// beginning of a stop sequence is held back until the next piece shows
// whether it is one; text before a stop sequence is released, the stop
// sequence and anything after it never are.
type stopper struct {
	stops   []string
	pending string // held back: a suffix that is a proper prefix of some stop
	done    bool
}

// push adds one piece of generated text. It returns the text that is now
// safe to send and whether a stop sequence was found.
func (s *stopper) push(text string) (out string, stopped bool) {
	if s.done {
		return "", true
	}
	if len(s.stops) == 0 {
		return text, false
	}
	buf := s.pending + text
	cut := -1
	for _, st := range s.stops {
		if i := strings.Index(buf, st); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		s.done, s.pending = true, ""
		return buf[:cut], true
	}
	hold := s.holdback(buf)
	s.pending = buf[len(buf)-hold:]
	return buf[:len(buf)-hold], false
}

// holdback returns the length of the longest suffix of buf that is a proper
// prefix of a stop sequence.
func (s *stopper) holdback(buf string) int {
	best := 0
	for _, st := range s.stops {
		n := min(len(st)-1, len(buf))
		for ; n > best; n-- {
			if strings.HasSuffix(buf, st[:n]) {
				best = n
				break
			}
		}
	}
	return best
}

// flush releases the held-back text at the end of the stream.
func (s *stopper) flush() string {
	out := s.pending
	s.pending = ""
	return out
}
