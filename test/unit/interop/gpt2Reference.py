# Independent numpy float64 GPT-2 forward (transformers GPT2LMHeadModel semantics), for checking our tfjs port.
import json, struct, sys, numpy as np
d = sys.argv[1]
b = open(d + '/model.safetensors', 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8+n]); h.pop('__metadata__', None)
W = {}
for k, v in h.items():
    s, e = v['data_offsets']; assert v['dtype'] == 'F32'
    W[k.replace('transformer.', '')] = np.frombuffer(b[8+n+s:8+n+e], dtype='<f4').reshape(v['shape']).astype(np.float64)
c = json.load(open(d + '/config.json'))
H, nh = c['n_embd'], c['n_head']; hd = H // nh
ids = np.array(json.loads(sys.argv[2]))
def ln(x, p): 
    m = x.mean(-1, keepdims=True); v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + c['layer_norm_epsilon']) * W[p + '.weight'] + W[p + '.bias']
def gelu(x): return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
B, S = ids.shape
x = W['wte.weight'][ids] + W['wpe.weight'][:S]
mask = np.triu(np.ones((S, S)), 1) * -1e30
for i in range(c['n_layer']):
    p = f'h.{i}'
    a = ln(x, p + '.ln_1') @ W[p + '.attn.c_attn.weight'] + W[p + '.attn.c_attn.bias']
    q, k, v = np.split(a, 3, axis=-1)
    sh = lambda t: t.reshape(B, S, nh, hd).transpose(0, 2, 1, 3)
    q, k, v = sh(q), sh(k), sh(v)
    sc = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd) + mask
    sc = np.exp(sc - sc.max(-1, keepdims=True)); sc /= sc.sum(-1, keepdims=True)
    o = (sc @ v).transpose(0, 2, 1, 3).reshape(B, S, H)
    x = x + o @ W[p + '.attn.c_proj.weight'] + W[p + '.attn.c_proj.bias']
    m = gelu(ln(x, p + '.ln_2') @ W[p + '.mlp.c_fc.weight'] + W[p + '.mlp.c_fc.bias'])
    x = x + m @ W[p + '.mlp.c_proj.weight'] + W[p + '.mlp.c_proj.bias']
logits = ln(x, 'ln_f') @ W['wte.weight'].T
print(json.dumps(logits.reshape(-1).tolist()))
