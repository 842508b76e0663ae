"""Float64 reference forward pass for the qwen2 architecture (Hugging Face semantics).

Reads a JSON dump {cfg, emb, layers, onorm, ids, logits} of model.EmbeddingF32 /
model.LoadLayerWeightsF32 output for the synthetic qwen2-tiny model (synth seed 7, q8_0) and
writes qwen2-tiny-ref.txt. Pure Python, standard library only; written independently of the Go
engine to check its qwen2 path (TestQwen2Reference reads the vector)."""
import json, math
d = json.load(open('/tmp/qwen_dump.json'))
c = d['cfg']; D=c['Dim']; H=c['NHeads']; KV=c['NKVHeads']; hd=c['HeadDim']; F=c['FFNDim']; V=c['Vocab']; eps=c['NormEps']; theta=c['RopeTheta']
emb = d['emb']; L = d['layers']
def matvec(W, x, rows, cols, b=None):
    out = [sum(W[r*cols+j]*x[j] for j in range(cols)) for r in range(rows)]
    if b: out = [o+bb for o,bb in zip(out,b)]
    return out
def rms(x, w):
    ss = sum(v*v for v in x)/len(x)
    r = 1/math.sqrt(ss+eps)
    return [w[i]*x[i]*r for i in range(len(x))]
inv = [1/(theta**(2*i/hd)) for i in range(hd//2)]
def rope(v, pos):  # HF rotate_half per head
    out = list(v)
    for h in range(len(v)//hd):
        base=h*hd
        for i in range(hd//2):
            c_, s_ = math.cos(pos*inv[i]), math.sin(pos*inv[i])
            x0, x1 = v[base+i], v[base+i+hd//2]
            out[base+i] = x0*c_ - x1*s_
            out[base+i+hd//2] = x1*c_ + x0*s_
    return out
ids = d['ids']
kc = [[] for _ in L]; vc = [[] for _ in L]
logits_all = []
for pos, t in enumerate(ids):
    x = emb[t*D:(t+1)*D]
    for li, w in enumerate(L):
        xb = rms(x, w['AttnNorm'])
        q = rope(matvec(w['Wq'], xb, H*hd, D, w['Bq']), pos)
        k = rope(matvec(w['Wk'], xb, KV*hd, D, w['Bk']), pos)
        v = matvec(w['Wv'], xb, KV*hd, D, w['Bv'])
        kc[li].append(k); vc[li].append(v)
        att = [0.0]*(H*hd)
        for h in range(H):
            g = h // (H//KV)
            qh = q[h*hd:(h+1)*hd]
            sc = [sum(qh[i]*kk[g*hd+i] for i in range(hd))/math.sqrt(hd) for kk in kc[li]]
            m = max(sc); e = [math.exp(s-m) for s in sc]; Z = sum(e)
            for j, vv in enumerate(vc[li]):
                for i in range(hd): att[h*hd+i] += e[j]/Z * vv[g*hd+i]
        o = matvec(w['Wo'], att, D, H*hd)
        x = [a+b for a,b in zip(x,o)]
        xb = rms(x, w['FFNNorm'])
        gt = matvec(w['WGate'], xb, F, D); up = matvec(w['WUp'], xb, F, D)
        hh = [gg/(1+math.exp(-gg))*u for gg,u in zip(gt,up)]
        dn = matvec(w['WDown'], hh, D, F)
        x = [a+b for a,b in zip(x,dn)]
    xn = rms(x, d['onorm'])
    logits_all += matvec(emb, xn, V, D)
go = d['logits']
mx = max(abs(a-b) for a,b in zip(go, logits_all)); scale = max(abs(a) for a in logits_all)
print("max abs diff", mx, "max |logit|", scale, "argmax equal", all(max(range(V), key=lambda i: go[p*V+i]) == max(range(V), key=lambda i: logits_all[p*V+i]) for p in range(len(ids))))
with open('qwen2-tiny-ref.txt','w') as f:
    f.write("# Float64 reference logits of synthetic qwen2-tiny (synth seed 7, q8_0), spec/07-model.md §8.\n")
    f.write("# Computed by qwen2_reference.py (Hugging Face Qwen2 semantics: rotate_half RoPE, q/k/v biases,\n")
    f.write("# grouped-query attention, tied head) from the engine's dequantised float32 weights.\n")
    f.write("ids " + " ".join(map(str, ids)) + "\n")
    for p in range(len(ids)-2, len(ids)):
        f.write("logits %d " % p + " ".join("%.9g" % v for v in logits_all[p*V:(p+1)*V]) + "\n")
