package model

import (
	"fmt"
	"testing"

	"github.com/unfed/unfed/compute/modeltest"
)

// benchDecode measures single-token decode from position 0 to positions-1,
// repeated b.N/positions times; tok/s is the figure reported.
func benchDecode(b *testing.B, path string, positions, threads int) {
	sh, err := Load(path, ShardOptions{Threads: threads})
	if err != nil {
		b.Fatal(err)
	}
	defer sh.Close()
	vocab := sh.Config().Vocab
	b.ResetTimer()
	done := 0
	for done < b.N {
		ss, err := sh.NewSession(SessionOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for p := 0; p < positions && done < b.N; p++ {
			if _, err := ss.ForwardTokens([]int{(p*7 + 1) % vocab}, p); err != nil {
				b.Fatal(err)
			}
			done++
		}
		ss.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
}

func BenchmarkDecodeStories260K(b *testing.B) {
	path := modeltest.Path(b, "stories260K.bin")
	for _, pos := range []int{64, 256} {
		for _, th := range []int{1, 2} {
			b.Run(fmt.Sprintf("pos%d/threads%d", pos, th), func(b *testing.B) { benchDecode(b, path, pos, th) })
		}
	}
}

func BenchmarkPrefillStories260K(b *testing.B) {
	sh, err := Load(modeltest.Path(b, "stories260K.bin"), ShardOptions{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer sh.Close()
	ids := make([]int, 64)
	for i := range ids {
		ids[i] = (i*7 + 1) % 512
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ss, _ := sh.NewSession(SessionOptions{})
		if _, err := ss.ForwardTokens(ids, 0); err != nil {
			b.Fatal(err)
		}
		ss.Close()
	}
	b.ReportMetric(float64(b.N*len(ids))/b.Elapsed().Seconds(), "tok/s")
}
