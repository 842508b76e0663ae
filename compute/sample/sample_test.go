package sample

import (
	"testing"
)

func logits() []float32 { return []float32{1, 3, 2, 3, -1, 0.5, 2.5, -4} }

func TestGreedy(t *testing.T) {
	s, _ := New(Params{})
	for i := 0; i < 3; i++ {
		if id, _ := s.Sample(logits()); id != 1 {
			t.Fatalf("greedy = %d, want 1 (lowest id of the tie)", id)
		}
	}
}

func TestSeededDeterministic(t *testing.T) {
	run := func(seed uint64) []int {
		s, err := New(Params{Temperature: 0.9, TopK: 6, TopP: 0.95, RepetitionPenalty: 1.3, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		for i := 0; i < 200; i++ {
			id, _ := s.Sample(logits())
			out = append(out, id)
		}
		return out
	}
	a, b, c := run(1), run(1), run(2)
	same := func(x, y []int) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Fatal("same seed gave different tokens")
	}
	if same(a, c) {
		t.Fatal("different seeds gave identical 200-token sequences")
	}
}

func TestTopKAndTopP(t *testing.T) {
	s, _ := New(Params{Temperature: 5, TopK: 2, Seed: 3})
	counts := map[int]int{}
	for i := 0; i < 2000; i++ {
		id, _ := s.Sample(logits())
		counts[id]++
	}
	if len(counts) != 2 || counts[1] == 0 || counts[3] == 0 {
		t.Fatalf("top-2 drew %v, want only ids 1 and 3", counts)
	}
	// top-p small enough keeps only the two tied best tokens
	s, _ = New(Params{Temperature: 1, TopP: 0.3, Seed: 4})
	for i := 0; i < 500; i++ {
		if id, _ := s.Sample(logits()); id != 1 && id != 3 {
			t.Fatalf("top-p 0.3 drew %d", id)
		}
	}
	// high temperature without truncation reaches every token
	s, _ = New(Params{Temperature: 100, Seed: 5})
	counts = map[int]int{}
	for i := 0; i < 4000; i++ {
		id, _ := s.Sample(logits())
		counts[id]++
	}
	if len(counts) != len(logits()) {
		t.Fatalf("temperature 100 reached %d of %d tokens", len(counts), len(logits()))
	}
}

func TestRepetitionPenalty(t *testing.T) {
	s, _ := New(Params{RepetitionPenalty: 10})
	first, _ := s.Sample(logits())
	second, _ := s.Sample(logits())
	if first != 1 || second != 3 {
		t.Fatalf("with penalty got %d then %d, want 1 then 3", first, second)
	}
}

func TestBadParams(t *testing.T) {
	for _, p := range []Params{{Temperature: -1}, {TopK: -1}, {TopP: 1.5}, {RepetitionPenalty: -2}} {
		if _, err := New(p); err == nil {
			t.Fatalf("%+v accepted", p)
		}
	}
	s, _ := New(Params{})
	if _, err := s.Sample(nil); err == nil {
		t.Fatal("empty logits accepted")
	}
}
