package tokenizer

import (
	"sort"

	"github.com/unfed/unfed/compute/gguf"
)

// Synthetic byte-level BPE vocabularies for synthetic models (spec §3.9).
// Layout of a vocabulary of n tokens:
//
//	0..255        one token per byte, in byte order (GPT-2 stand-in characters)
//	256..n-4      merged tokens: first merges learned by BPE training on the
//	              built-in English text below, then generated merges (a
//	              token followed by one letter) until the size is reached
//	n-3, n-2, n-1 <|endoftext|>, <|im_start|>, <|im_end|> (control)
//
// The result depends only on n.

// SyntheticSpecials are the control tokens at the end of a synthetic vocabulary.
var SyntheticSpecials = [3]string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}

// MinSyntheticVocab is the smallest synthetic vocabulary: the 256 byte
// tokens and the three specials.
const MinSyntheticVocab = 256 + len(SyntheticSpecials)

const synthCorpus = `Once upon a time, there was a little town by the sea. The people of the town
worked on their boats every morning and came home in the evening. They told stories about the
wind, the waves and the stars. One day, a girl named Mia found a small red box on the beach.
She opened it and saw a map inside. "Where does this go?" she asked her brother Tom. He looked
at the map for a long time and said, "I think it shows the old house on the hill." They walked
up the hill together. The house was quiet and the door was open. Inside, they found 12 books,
3 lamps and a letter from 1987. The letter said: "If you are reading this, you have found my
secret. Take care of the garden, and it will take care of you." Mia and Tom smiled. They went
back home and told their mother what they had seen. Their mother laughed and said that she had
written the letter when she was a child. Everyone in the town came to see the garden, and it
became the most beautiful place by the sea. The network sends each request through several
relays, and every relay computes only a part of the model. Numbers like 3.14, 42 and 2025 are
common in text, as are questions, answers, lists; and quotes.`

// SyntheticGPT2Vocab returns a deterministic byte-level BPE vocabulary of n
// tokens with its merges (best first) and GGUF token types. n is raised to
// MinSyntheticVocab and lowered to MaxVocab if outside those bounds.
func SyntheticGPT2Vocab(n int) (tokens []string, merges []string, types []int32) {
	n = min(max(n, MinSyntheticVocab), MaxVocab)
	target := n - len(SyntheticSpecials)
	have := make(map[string]bool, n)
	for b := 0; b < 256; b++ {
		s := string(byteToRune[b])
		tokens = append(tokens, s)
		have[s] = true
	}
	add := func(a, b string) {
		merges = append(merges, a+" "+b)
		if !have[a+b] { // two merges may make the same token
			tokens = append(tokens, a+b)
			have[a+b] = true
		}
	}
	trainMerges(target-len(tokens), have, add)
	for i := 256; len(tokens) < target && i < len(tokens); i++ {
		for _, c := range "etaoinshrdlucmfwypvbgkjqxz" {
			if len(tokens) >= target {
				break
			}
			if s := tokens[i] + string(c); !have[s] && len(s) <= MaxTokenBytes {
				add(tokens[i], string(c))
			}
		}
	}
	tokens = append(tokens, SyntheticSpecials[:]...)
	types = make([]int32, len(tokens))
	for i := range types {
		types[i] = int32(TypeNormal)
	}
	for i := len(tokens) - len(SyntheticSpecials); i < len(tokens); i++ {
		types[i] = int32(TypeControl)
	}
	return tokens, merges, types
}

// trainMerges learns up to limit merges from synthCorpus by classic BPE
// training: repeatedly merge the most frequent adjacent pair (ties: the
// lexicographically smallest) within GPT-2 pre-tokens.
func trainMerges(limit int, have map[string]bool, add func(a, b string)) {
	// limit counts new tokens; add records each merge and its token.
	counts := map[string]int{}
	preGPT2.split(synthCorpus, func(w string) { counts[byteEncode(w)]++ })
	keys := make([]string, 0, len(counts))
	for w := range counts {
		keys = append(keys, w)
	}
	sort.Strings(keys)
	type word struct {
		syms  []string
		count int
	}
	words := make([]word, len(keys))
	for i, w := range keys {
		for _, r := range w {
			words[i].syms = append(words[i].syms, string(r))
		}
		words[i].count = counts[w]
	}
	for start := len(have); len(have)-start < limit; {
		pairs := map[[2]string]int{}
		for _, w := range words {
			for j := 1; j < len(w.syms); j++ {
				pairs[[2]string{w.syms[j-1], w.syms[j]}] += w.count
			}
		}
		var best [2]string
		bestN := 1 // a pair must occur at least twice
		for p, c := range pairs {
			if c > bestN || (c == bestN && c > 1 && (p[0] < best[0] || (p[0] == best[0] && p[1] < best[1]))) {
				best, bestN = p, c
			}
		}
		if bestN < 2 {
			return
		}
		add(best[0], best[1])
		for i := range words {
			s := words[i].syms
			out := s[:0]
			for j := 0; j < len(s); j++ {
				if j+1 < len(s) && s[j] == best[0] && s[j+1] == best[1] {
					out = append(out, best[0]+best[1])
					j++
				} else {
					out = append(out, s[j])
				}
			}
			words[i].syms = out
		}
	}
}

// SyntheticChatTemplate is the ChatML template written by AddSyntheticGPT2.
const SyntheticChatTemplate = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

// AddSyntheticGPT2 writes the tokenizer metadata of a synthetic qwen2-style
// vocabulary of n tokens (see SyntheticGPT2Vocab) into w: model "gpt2",
// pre-tokenizer "qwen2", <|endoftext|> as BOS and EOS (add_bos_token false),
// <|im_end|> as EOT, and a ChatML chat template.
func AddSyntheticGPT2(w *gguf.Writer, n int) {
	tokens, merges, types := SyntheticGPT2Vocab(n)
	end := uint32(len(tokens) - 3)
	w.AddString(KeyModel, "gpt2")
	w.AddString(KeyPre, "qwen2")
	w.AddStringArray(KeyTokens, tokens)
	w.AddInt32Array(KeyTokenType, types)
	w.AddStringArray(KeyMerges, merges)
	w.AddUint32(KeyBOS, end)
	w.AddUint32(KeyEOS, end)
	w.AddUint32(KeyEOT, end+2)
	w.AddBool(KeyAddBOS, false)
	w.AddString(KeyChatTemplate, SyntheticChatTemplate)
}
