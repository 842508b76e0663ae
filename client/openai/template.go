package openai

// Chat templates (spec/08-client-api.md §4). A model's chat template is a
// Jinja program; running Jinja is out of scope, so the handler recognises
// the two families in common use by a marker in the template text and
// renders them natively, and falls back to a documented plain format.

import "strings"

// Template names a chat prompt format.
type Template int

// Known chat prompt formats.
const (
	// TemplatePlain renders "role: content\n" per message and ends with
	// "assistant:". It is used when a model has no recognised template.
	TemplatePlain Template = iota
	// TemplateChatML renders "<|im_start|>role\ncontent<|im_end|>\n" per
	// message and ends with "<|im_start|>assistant\n" (qwen2 and others).
	TemplateChatML
	// TemplateLlama2 renders Llama-2-chat's "[INST] ... [/INST]" turns.
	TemplateLlama2
)

func (t Template) String() string {
	switch t {
	case TemplateChatML:
		return "chatml"
	case TemplateLlama2:
		return "llama2"
	}
	return "plain"
}

// DetectTemplate recognises a model's chat template text. Recognition is
// by marker, so it also covers the many variants of each family.
func DetectTemplate(chatTemplate string) Template {
	switch {
	case strings.Contains(chatTemplate, "<|im_start|>"):
		return TemplateChatML
	case strings.Contains(chatTemplate, "[INST]"):
		return TemplateLlama2
	}
	return TemplatePlain
}

// Render turns messages into the prompt text for the model, ready for the
// assistant's reply. The backend prepends BOS as for any prompt, so the
// rendering never starts with a BOS marker.
func (t Template) Render(msgs []Message) string {
	var b strings.Builder
	switch t {
	case TemplateChatML:
		for _, m := range msgs {
			b.WriteString("<|im_start|>")
			b.WriteString(m.Role)
			b.WriteByte('\n')
			b.WriteString(m.Content)
			b.WriteString("<|im_end|>\n")
		}
		b.WriteString("<|im_start|>assistant\n")
	case TemplateLlama2:
		renderLlama2(&b, msgs)
	default:
		for _, m := range msgs {
			b.WriteString(m.Role)
			b.WriteString(": ")
			b.WriteString(m.Content)
			b.WriteByte('\n')
		}
		b.WriteString("assistant:")
	}
	return b.String()
}

// renderLlama2 follows Meta's Llama-2-chat template: system messages are
// folded into the first user turn inside <<SYS>> markers, each user turn is
// "[INST] text [/INST]", each assistant turn " text </s>", and turns after
// the first start with "<s>" (the tokenizer's BOS text).
func renderLlama2(b *strings.Builder, msgs []Message) {
	var sys []string
	turn := 0
	for _, m := range msgs {
		switch m.Role {
		case "system":
			sys = append(sys, strings.TrimSpace(m.Content))
		case "user":
			if turn > 0 {
				b.WriteString("<s>")
			}
			turn++
			b.WriteString("[INST] ")
			if len(sys) > 0 {
				b.WriteString("<<SYS>>\n")
				b.WriteString(strings.Join(sys, "\n"))
				b.WriteString("\n<</SYS>>\n\n")
				sys = nil
			}
			b.WriteString(strings.TrimSpace(m.Content))
			b.WriteString(" [/INST]")
		case "assistant":
			if turn == 0 { // an assistant turn before any user turn
				turn++
			}
			b.WriteByte(' ')
			b.WriteString(strings.TrimSpace(m.Content))
			b.WriteString(" </s>")
		}
	}
	if len(sys) > 0 { // system text with no user turn after it
		if turn > 0 {
			b.WriteString("<s>")
		}
		b.WriteString("[INST] <<SYS>>\n")
		b.WriteString(strings.Join(sys, "\n"))
		b.WriteString("\n<</SYS>>\n\n [/INST]")
	}
}

// stops returns the stop sequences implied by the format: the text that
// marks the end of the assistant's turn, in case the model writes it out
// instead of ending with an end-of-generation token.
func (t Template) stops() []string {
	switch t {
	case TemplateChatML:
		return []string{"<|im_end|>", "<|im_start|>"}
	case TemplateLlama2:
		return []string{"</s>", "[INST]"}
	}
	return []string{"\nuser:", "\nassistant:", "\nsystem:"}
}
