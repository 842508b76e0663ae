package sharechain

// The mint's HTTP face (spec 12 §2.3, §9) and the wallet's client for it.
//
//	GET  /mint/v1/keys   -> {"keys":[{"epoch":E,"denom":D,"pkix":BASE64}]}
//	POST /mint/v1/issue  <- {"deposit":REF,"key_id":HEX,"blinded":[BASE64]}
//	                     -> {"signatures":[BASE64]}

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxIssueBody bounds an issue request: MaxIssue base64 messages of the
// largest key plus JSON framing.
const maxIssueBody = MaxIssue*(MaxModulusBytes*4/3+8) + 4096

type keysDoc struct {
	Keys []keyDoc `json:"keys"`
}

type keyDoc struct {
	Epoch uint64 `json:"epoch"`
	Denom uint64 `json:"denom"`
	PKIX  []byte `json:"pkix"`
}

type issueReq struct {
	Deposit string   `json:"deposit"`
	KeyID   string   `json:"key_id"`
	Blinded [][]byte `json:"blinded"`
}

type issueResp struct {
	Signatures [][]byte `json:"signatures"`
}

// Handler serves the mint. Every issue request is signed against the
// deposit reference it names: this handler is a faucet. A mint for real
// deposits checks them before calling Issue.
func (m *Mint) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /mint/v1/keys", func(w http.ResponseWriter, r *http.Request) {
		pubs, _ := m.PublicKeys(r.Context())
		var doc keysDoc
		for _, k := range pubs {
			der, err := x509.MarshalPKIXPublicKey(k.Key)
			if err != nil {
				http.Error(w, "bad key", http.StatusInternalServerError)
				return
			}
			doc.Keys = append(doc.Keys, keyDoc{Epoch: k.Epoch, Denom: k.Denom, PKIX: der})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(doc)
	})
	mux.HandleFunc("POST /mint/v1/issue", func(w http.ResponseWriter, r *http.Request) {
		var req issueReq
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxIssueBody)).Decode(&req); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		raw, err := hex.DecodeString(req.KeyID)
		if err != nil || len(raw) != KeyIDLen || len(req.Deposit) > 256 {
			http.Error(w, "bad key id or deposit", http.StatusBadRequest)
			return
		}
		var id KeyID
		copy(id[:], raw)
		sigs, err := m.Issue(r.Context(), req.Deposit, id, req.Blinded)
		if err != nil {
			http.Error(w, strings.TrimPrefix(err.Error(), "sharechain: "), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(issueResp{Signatures: sigs})
	})
	return mux
}

// HTTPIssuer is an Issuer reached over HTTP at a base URL.
type HTTPIssuer struct {
	URL    string
	Client *http.Client // nil: http.DefaultClient
}

func (h HTTPIssuer) client() *http.Client {
	if h.Client != nil {
		return h.Client
	}
	return http.DefaultClient
}

// PublicKeys implements Issuer.
func (h HTTPIssuer) PublicKeys(ctx context.Context) ([]MintPublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(h.URL, "/")+"/mint/v1/keys", nil)
	if err != nil {
		return nil, fmt.Errorf("sharechain: mint: %w", err)
	}
	var doc keysDoc
	if err := h.do(req, 1<<20, &doc); err != nil {
		return nil, err
	}
	if len(doc.Keys) > 256 {
		return nil, errors.New("sharechain: mint: too many keys")
	}
	out := make([]MintPublicKey, 0, len(doc.Keys))
	for _, k := range doc.Keys {
		pk, err := x509.ParsePKIXPublicKey(k.PKIX)
		if err != nil {
			return nil, fmt.Errorf("sharechain: mint key: %w", err)
		}
		rk, ok := pk.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("sharechain: mint key of type %T", pk)
		}
		mk := MintPublicKey{Epoch: k.Epoch, Denom: k.Denom, Key: rk}
		var ks KeySet
		if err := ks.Add(mk); err != nil {
			return nil, err
		}
		out = append(out, mk)
	}
	return out, nil
}

// Issue implements Issuer.
func (h HTTPIssuer) Issue(ctx context.Context, deposit string, id KeyID, blinded [][]byte) ([][]byte, error) {
	body, _ := json.Marshal(issueReq{Deposit: deposit, KeyID: hex.EncodeToString(id[:]), Blinded: blinded})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(h.URL, "/")+"/mint/v1/issue", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("sharechain: mint: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	var resp issueResp
	if err := h.do(req, maxIssueBody, &resp); err != nil {
		return nil, err
	}
	return resp.Signatures, nil
}

func (h HTTPIssuer) do(req *http.Request, limit int64, out any) error {
	resp, err := h.client().Do(req)
	if err != nil {
		return fmt.Errorf("sharechain: mint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("sharechain: mint: %w", err)
	}
	if int64(len(body)) > limit {
		return errors.New("sharechain: mint: response too large")
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sharechain: mint: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("sharechain: mint: %w", err)
	}
	return nil
}
