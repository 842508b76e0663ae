package openai

// The model's own chat template, run as Jinja (spec/08-client-api.md §4).
// A GGUF model carries its chat format as a Jinja program
// (tokenizer.chat_template); the handler runs it with
// github.com/ardanlabs/jinja, an engine written for these templates, on the
// conversation with add_generation_prompt true. The marker formats of
// template.go remain the fallback where a model has no template, or its
// template does not compile or fails on the conversation.

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ardanlabs/jinja"
)

// Limits on a chat template and what it renders: the template comes from a
// local model file, but a broken one must not make a request unbounded.
const (
	maxChatTemplate = 64 << 10
	maxChatPrompt   = 4 << 20
)

// ChatPrompt is a conversation rendered for the model.
type ChatPrompt struct {
	// Text is the prompt, ready for the assistant's reply, without a
	// leading BOS (the backend prepends BOS as for any prompt).
	Text string
	// Stops are stop sequences implied by the format.
	Stops []string
	// Jinja tells whether the model's own template produced Text; false
	// means a marker format (Format) did.
	Jinja  bool
	Format Template
}

// compiled caches compiled templates by their text (a process serves few
// models); a template that failed to compile is cached as nil.
var compiled sync.Map // string → *jinja.Template

func compileChatTemplate(src string) (*jinja.Template, error) {
	if v, ok := compiled.Load(src); ok {
		if v.(*jinja.Template) == nil {
			return nil, errors.New("openai: chat template does not compile")
		}
		return v.(*jinja.Template), nil
	}
	t, err := jinja.Compile(src)
	if err != nil {
		compiled.Store(src, (*jinja.Template)(nil))
		return nil, fmt.Errorf("openai: chat template: %w", err)
	}
	compiled.Store(src, t)
	return t, nil
}

// RenderChat renders msgs with the model's chat template chatTemplate
// (bos and eos are the text of the model's BOS and EOS tokens, which many
// templates write), falling back to the marker formats (DetectTemplate)
// when there is none or it fails. Stops come from the recognised format
// family, plus the EOS text when the template wrote it.
func RenderChat(chatTemplate, bos, eos string, msgs []Message) ChatPrompt {
	format := DetectTemplate(chatTemplate)
	if text, err := renderJinja(chatTemplate, bos, eos, msgs); err == nil {
		stops := format.stops()
		if format == TemplatePlain {
			stops = nil // the template is not the plain format: its stops do not apply
		}
		if eos != "" && strings.Contains(chatTemplate, "eos_token") {
			stops = append(stops, eos)
		}
		return ChatPrompt{Text: text, Stops: stops, Jinja: true, Format: format}
	}
	return ChatPrompt{Text: format.Render(msgs), Stops: format.stops(), Format: format}
}

// renderJinja runs chatTemplate on msgs. A panic in the engine on a
// malformed template is turned into an error.
func renderJinja(chatTemplate, bos, eos string, msgs []Message) (out string, err error) {
	if strings.TrimSpace(chatTemplate) == "" {
		return "", errors.New("openai: no chat template")
	}
	if len(chatTemplate) > maxChatTemplate {
		return "", fmt.Errorf("openai: chat template of %d bytes (limit %d)", len(chatTemplate), maxChatTemplate)
	}
	t, err := compileChatTemplate(chatTemplate)
	if err != nil {
		return "", err
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("openai: chat template failed: %v", r)
		}
	}()
	list := make([]any, len(msgs))
	for i, m := range msgs {
		list[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	raise := jinja.NewCallable("raise_exception", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
		msg := "raise_exception"
		if len(args) > 0 {
			msg = args[0].String()
		}
		return jinja.Undefined(), errors.New(msg)
	})
	out, err = t.RenderValues(map[string]jinja.Value{
		"messages":              jinja.FromGoValue(list),
		"add_generation_prompt": jinja.NewBool(true),
		"bos_token":             jinja.NewString(bos),
		"eos_token":             jinja.NewString(eos),
		"raise_exception":       raise,
	})
	if err != nil {
		return "", fmt.Errorf("openai: chat template: %w", err)
	}
	if len(out) > maxChatPrompt {
		return "", fmt.Errorf("openai: chat template rendered %d bytes (limit %d)", len(out), maxChatPrompt)
	}
	if bos != "" {
		out = strings.TrimPrefix(out, bos)
	}
	return out, nil
}
