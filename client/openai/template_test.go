package openai

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

type templateVectors struct {
	Cases []struct {
		Name         string    `json:"name"`
		TemplateText string    `json:"template_text"`
		Format       string    `json:"format"`
		Messages     []Message `json:"messages"`
		Prompt       string    `json:"prompt"`
	} `json:"cases"`
}

// TestChatTemplateVectors renders spec/vectors/clientapi/chat_templates.json.
func TestChatTemplateVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "spec", "vectors", "clientapi", "chat_templates.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v templateVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Cases) < 5 {
		t.Fatalf("only %d vectors", len(v.Cases))
	}
	for _, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			tmpl := DetectTemplate(c.TemplateText)
			if tmpl.String() != c.Format {
				t.Fatalf("detected %s, want %s", tmpl, c.Format)
			}
			if got := tmpl.Render(c.Messages); got != c.Prompt {
				t.Fatalf("rendered\n%q\nwant\n%q", got, c.Prompt)
			}
		})
	}
}
