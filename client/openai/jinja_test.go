package openai

import (
	"strings"
	"testing"
)

// Real templates as models ship them: Qwen2's ChatML and Meta's
// Llama-2-chat.
const (
	qwen2Template = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

	llama2Template = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

var conversations = [][]Message{
	{{"user", "Hello"}},
	{{"system", "Be brief."}, {"user", "Hi there"}},
	{{"system", "Be brief."}, {"user", "One"}, {"assistant", "Two"}, {"user", "Three"}},
}

// TestJinjaMatchesNativeFormats: the real Qwen2 and Llama-2 templates, run
// as Jinja, give exactly what the native renderers of their families give
// (two implementations, one answer).
func TestJinjaMatchesNativeFormats(t *testing.T) {
	for _, msgs := range conversations {
		got := RenderChat(llama2Template, "<s>", "</s>", msgs)
		if !got.Jinja || got.Format != TemplateLlama2 {
			t.Fatalf("llama2: not rendered by Jinja: %+v", got)
		}
		if want := TemplateLlama2.Render(msgs); got.Text != want {
			t.Errorf("llama2 %v:\njinja  %q\nnative %q", msgs, got.Text, want)
		}
		// ChatML: Qwen2 adds a default system message when none is given.
		native := msgs
		if msgs[0].Role != "system" {
			native = append([]Message{{"system", "You are a helpful assistant."}}, msgs...)
		}
		got = RenderChat(qwen2Template, "", "<|endoftext|>", msgs)
		if want := TemplateChatML.Render(native); !got.Jinja || got.Text != want {
			t.Errorf("qwen2 %v:\njinja  %q\nnative %q", msgs, got.Text, want)
		}
		if !strings.Contains(strings.Join(got.Stops, "|"), "<|im_end|>") {
			t.Errorf("qwen2 stops %v", got.Stops)
		}
	}
}

// TestJinjaRunsTheModelsOwnFormat: a template of no known family is run,
// not replaced by the plain fallback.
func TestJinjaRunsTheModelsOwnFormat(t *testing.T) {
	tmpl := "{% for m in messages %}### {{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}### assistant:{% endif %}"
	got := RenderChat(tmpl, "", "", []Message{{"system", "S"}, {"user", "Q"}})
	if !got.Jinja || got.Text != "### system: S\n### user: Q\n### assistant:" || len(got.Stops) != 0 {
		t.Fatalf("%+v", got)
	}
}

// TestJinjaFallback: no template, one that does not compile, one that
// raises on the conversation, or one too large: the marker formats render.
func TestJinjaFallback(t *testing.T) {
	msgs := []Message{{"user", "A"}, {"user", "B"}} // not alternating: Llama-2's template raises
	for name, c := range map[string]struct {
		tmpl string
		want Template
	}{
		"none":           {"", TemplatePlain},
		"does not parse": {"{% for m in %}<|im_start|>", TemplateChatML},
		"raises":         {llama2Template, TemplateLlama2},
		"too large":      {"[INST]" + strings.Repeat(" ", maxChatTemplate), TemplateLlama2},
	} {
		got := RenderChat(c.tmpl, "<s>", "</s>", msgs)
		if got.Jinja || got.Format != c.want || got.Text != c.want.Render(msgs) {
			t.Errorf("%s: %+v", name, got)
		}
	}
}

// FuzzRenderChat: any template text from a model file renders or falls back,
// without panicking, and the prompt stays within the limit.
func FuzzRenderChat(f *testing.F) {
	for _, s := range []string{qwen2Template, llama2Template, "{{ messages[0].content * 3 }}", "{% for %}", "{{ raise_exception('x') }}", "{{ bos_token }}{{ messages|length }}"} {
		f.Add(s, "hello")
	}
	f.Fuzz(func(t *testing.T, tmpl, content string) {
		got := RenderChat(tmpl, "<s>", "</s>", []Message{{"user", content}})
		if got.Jinja && len(got.Text) > maxChatPrompt {
			t.Fatalf("%d bytes", len(got.Text))
		}
	})
}
