package audit

import (
	"fmt"
	"sort"
	"strings"

	"github.com/unfed/unfed/compute/mpc"
)

// view is everything one role saw during one request that could reveal a
// token, taken from its capture records.
type view struct {
	dim, vocab int
	// tokens are TOKENS ids received from the client, by position.
	tokens map[int]int
	// acts are ACTIVATIONS rows received on an edge (the input of the
	// role's first layer), by position.
	acts map[int][]float32
	// logits are the LOGITS the role sent: the argmax (a generated token)
	// by the position it follows, and the values for the baseline's
	// statistics.
	logits    map[int]int
	logitVals []float32
	// finals are the final hidden states (FINAL_HIDDEN) the role sent, by
	// the position they follow: the attacker applies the public head.
	finals map[int][]float32
	// windows are the model-width vectors of SHARE messages and peer
	// openings, read as fixed point.
	windows []window
	// counts of records by direction and type, and of records that did not
	// parse.
	counts map[string]int
	bad    int

	rawShares []rawShare
	rawPeers  []rawPeer
	// steps maps a step to the positions it covers, from the SHAREs: a
	// step runs a batch of consecutive positions (a prompt in one step).
	steps map[int]stepSpan
}

// stepSpan is the positions pos … pos+rows−1 of one step.
type stepSpan struct{ pos, rows int }

// window is one vector of the model's width a confidential role saw.
type window struct {
	pos int
	src string // where it was found, e.g. "peer-in/r12/w1"
	row []float32
}

// kind returns the source kind of a window label: its text up to the first
// slash.
func (w window) kind() string {
	k, _, _ := strings.Cut(w.src, "/")
	return k
}

func newView(dim, vocab int) *view {
	return &view{dim: dim, vocab: vocab, tokens: map[int]int{}, acts: map[int][]float32{},
		logits: map[int]int{}, finals: map[int][]float32{}, counts: map[string]int{}}
}

// recordName names a record's direction and message type for the counts.
func recordName(r Record) string {
	t := r.Msg[0]
	var name string
	if r.Dir.Edge() {
		switch t {
		case edgeActivations:
			name = "ACTIVATIONS"
		case edgeMPCShare:
			name = "MPC_SHARE"
		case edgeMPCPeer:
			name = "MPC_PEER"
		case edgeMPCPrep:
			name = "MPC_PREP"
		case edgeMPCReshare:
			name = "MPC_RESHARE"
		default:
			name = fmt.Sprintf("edge %#02x", t)
		}
	} else {
		switch t {
		case typeSetup:
			name = "SETUP"
		case typeTokens:
			name = "TOKENS"
		case typeMPCStep:
			name = "MPC_STEP"
		case typeHidden:
			name = "HIDDEN"
		case typeFinal:
			name = "FINAL_HIDDEN"
		case 0x04:
			name = "TRUNCATE"
		case 0x05:
			name = "TEARDOWN"
		case typeDeal:
			name = "DEAL"
		case typeMPCInput:
			name = "MPC_INPUT"
		case 0x81:
			name = "SETUP_OK"
		case typeLogits:
			name = "LOGITS"
		case 0x83:
			name = "ERROR"
		case typeMPCOutput:
			name = "MPC_OUTPUT"
		default:
			name = fmt.Sprintf("type %#02x", t)
		}
	}
	if r.Dir == FromClient || r.Dir == FromEdge {
		return "in " + name
	}
	return "out " + name
}

// add reads one record into the view.
func (v *view) add(r Record) {
	if len(r.Msg) == 0 {
		v.bad++
		return
	}
	v.counts[recordName(r)]++
	var err error
	switch r.Dir {
	case FromClient:
		switch r.Msg[0] {
		case typeTokens:
			err = v.addTokens(r.Msg)
		case typeHidden:
			err = v.addActivations(r.Msg)
		case typeMPCInput:
			err = v.addShareMsg(r.Msg, "input")
		}
	case ToClient:
		switch r.Msg[0] {
		case typeLogits:
			err = v.addLogits(r.Msg)
		case typeFinal:
			err = v.addFinal(r.Msg)
		case typeMPCOutput:
			err = v.addShareMsg(r.Msg, "output")
		}
	case FromEdge, ToEdge:
		in := r.Dir == FromEdge
		switch r.Msg[0] {
		case edgeActivations:
			if in {
				err = v.addActivations(r.Msg)
			}
		case edgeMPCReshare:
			err = v.addShareMsg(r.Msg, map[bool]string{true: "reshare-in", false: "reshare-out"}[in])
		case edgeMPCPeer:
			if len(r.Msg) == 2 && r.Msg[1] == 0 {
				break // the abort notice a party sends when its session ends
			}
			err = v.addPeer(r.Msg[1:], in)
		}
	}
	if err != nil {
		v.bad++
	}
}

func (v *view) addTokens(b []byte) error {
	t, err := parseTokens(b)
	if err != nil {
		return err
	}
	for i, id := range t.IDs {
		if _, seen := v.tokens[t.Start+i]; !seen {
			v.tokens[t.Start+i] = id
		}
	}
	return nil
}

func (v *view) addActivations(b []byte) error {
	a, err := parseActivations(b)
	if err != nil {
		return err
	}
	if a.Dim != v.dim {
		return fmt.Errorf("audit: activations of width %d", a.Dim)
	}
	for i := 0; i < a.N; i++ {
		if _, seen := v.acts[a.Start+i]; !seen {
			v.acts[a.Start+i] = a.Data[i*a.Dim : (i+1)*a.Dim]
		}
	}
	return nil
}

func (v *view) addFinal(b []byte) error {
	a, err := parseActivations(b)
	if err != nil {
		return err
	}
	if a.Dim != v.dim || a.N != 1 {
		return fmt.Errorf("audit: final hidden state of %d×%d", a.N, a.Dim)
	}
	if _, seen := v.finals[a.Start]; !seen {
		v.finals[a.Start] = a.Data
	}
	return nil
}

func (v *view) addLogits(b []byte) error {
	l, err := parseLogits(b)
	if err != nil {
		return err
	}
	v.logitVals = append(v.logitVals, l.Values...)
	if _, seen := v.logits[l.Pos]; !seen {
		v.logits[l.Pos] = l.Argmax
	}
	return nil
}

// shareSeen collects SHARE vectors by position for the sums.
type shareKey struct {
	src string
	pos int
}

func (v *view) addShareMsg(b []byte, src string) error {
	if len(b) < 2 {
		return fmt.Errorf("audit: short share message")
	}
	s, err := mpc.DecodeShare(b[2:])
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if s.Dim != v.dim {
		return fmt.Errorf("audit: share of width %d", s.Dim)
	}
	// A step's rows are consecutive positions from s.Pos.
	if v.steps == nil {
		v.steps = map[int]stepSpan{}
	}
	if _, ok := v.steps[int(s.Step)]; !ok {
		v.steps[int(s.Step)] = stepSpan{int(s.Pos), s.Rows}
	}
	for r := 0; r < s.Rows; r++ {
		v.rawShares = append(v.rawShares, rawShare{src: src, pos: int(s.Pos) + r, vals: s.Vals[r*s.Dim : (r+1)*s.Dim]})
	}
	return nil
}

// rawShare and rawPeer keep ring values until finish forms their sums.
type rawShare struct {
	src  string
	pos  int
	vals []uint64
}

type rawPeer struct {
	in          bool
	step, round int
	vals        []uint64
}

func (v *view) addPeer(b []byte, in bool) error {
	p, err := parsePeer(b)
	if err != nil {
		return err
	}
	v.rawPeers = append(v.rawPeers, rawPeer{in: in, step: p.Step, round: p.Round, vals: p.Values})
	return nil
}

// finish turns the ring values into windows: every SHARE vector; at each
// position the sum of the SHAREs of one direction (a party adds the two
// RESHARE pieces into its input share); every dim-sized window of a peer
// message in either direction and of the sum of the two messages of one
// round (the opened, masked value). A peer message of a step of r positions
// whose count is a multiple of r holds one block per position, in order;
// its windows are taken within each block.
func (v *view) finish() {
	byKey := map[shareKey][][]uint64{}
	var keys []shareKey
	for _, s := range v.rawShares {
		k := shareKey{s.src, s.pos}
		if byKey[k] == nil {
			keys = append(keys, k)
		}
		n := len(byKey[k])
		byKey[k] = append(byKey[k], s.vals)
		v.windows = append(v.windows, window{pos: s.pos, src: fmt.Sprintf("%s/%d", s.src, n), row: FixedToFloat(s.vals, FixedScale)})
	}
	for _, k := range keys {
		if vs := byKey[k]; len(vs) == 2 {
			v.windows = append(v.windows, window{pos: k.pos, src: k.src + "-sum", row: FixedToFloat(addRing(vs[0], vs[1]), FixedScale)})
		}
	}
	type roundKey struct{ step, round int }
	opened := map[roundKey][2][]uint64{}
	var rounds []roundKey
	for _, p := range v.rawPeers {
		dirName := "peer-out"
		side := 1
		if p.in {
			dirName, side = "peer-in", 0
		}
		v.addStepWindows(p.step, fmt.Sprintf("%s/r%d", dirName, p.round), p.vals)
		k := roundKey{p.step, p.round}
		o, ok := opened[k]
		if !ok {
			rounds = append(rounds, k)
		}
		if o[side] == nil {
			o[side] = p.vals
			opened[k] = o
		}
	}
	for _, k := range rounds {
		o := opened[k]
		if o[0] != nil && o[1] != nil && len(o[0]) == len(o[1]) {
			v.addStepWindows(k.step, fmt.Sprintf("peer-open/r%d", k.round), addRing(o[0], o[1]))
		}
	}
	v.rawShares, v.rawPeers = nil, nil
	sort.SliceStable(v.windows, func(i, j int) bool { return v.windows[i].pos < v.windows[j].pos })
}

// addStepWindows adds the windows of a peer message of step: within each
// position's block when the count divides evenly among the step's
// positions, else over the whole message, each window at the position its
// offset falls in. A step no SHARE names is one position, the step itself.
func (v *view) addStepWindows(step int, src string, vals []uint64) {
	sp, ok := v.steps[step]
	if !ok || sp.rows < 1 {
		sp = stepSpan{step, 1}
	}
	if len(vals)%sp.rows == 0 {
		block := len(vals) / sp.rows
		for r := 0; r < sp.rows; r++ {
			v.addWindows(func(int) int { return sp.pos + r }, src, vals[r*block:(r+1)*block])
		}
		return
	}
	v.addWindows(func(off int) int { return sp.pos + off*sp.rows/len(vals) }, src, vals)
}

// addWindows adds every consecutive dim-sized window of vals, window k at
// position pos(offset of its first value).
func (v *view) addWindows(pos func(off int) int, src string, vals []uint64) {
	for k := 0; (k+1)*v.dim <= len(vals); k++ {
		v.windows = append(v.windows, window{pos: pos(k * v.dim), src: fmt.Sprintf("%s/w%d", src, k),
			row: FixedToFloat(vals[k*v.dim:(k+1)*v.dim], FixedScale)})
	}
}
