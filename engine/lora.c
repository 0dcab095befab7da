/* lora.c: LoRA deltas for a packed multi-tenant batch (see lora.h): the
 * adapters' offset table, PEFT initialisation, per-tenant dropout streams,
 * and the segment-wise forward and backward on two small sgemm calls each. */
#include "engine/lora.h"
#include "common/log.h"
#include "engine/rng.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void lora_module_dims(int m, int C, int *in, int *out)
{
    static const int in_mult[4] = {1, 1, 1, 4};
    static const int out_mult[4] = {3, 1, 4, 1};
    *in = m >= 0 && m < 4 ? in_mult[m] * C : 0;
    *out = m >= 0 && m < 4 ? out_mult[m] * C : 0;
}

void lora_dims_gpt2(int C, lora_dims_t *dims)
{
    memset(dims, 0, sizeof *dims);
    dims->arch = "gpt2";
    dims->n_embd = C;
    for (int m = 0; m < 4; m++) {
        dims->modules |= 1u << m;
        lora_module_dims(m, C, &dims->in[m], &dims->out[m]);
    }
}

int lora_targets_resolve(unsigned targets, const lora_dims_t *dims, unsigned *out)
{
    unsigned named = targets & ~LORA_ALL_LINEAR;
    for (int m = 0; m < LORA_NMODULES; m++)
        if ((named >> m) & 1 && !((dims->modules >> m) & 1))
            return weft_error("LoRA target module %d is not a module of a %s model", m, dims->arch);
    *out = targets & LORA_ALL_LINEAR ? dims->modules : named;
    return 0;
}

float lora_spec_scaling(const lora_spec_t *spec)
{
    return spec->use_rslora ? spec->alpha / sqrtf((float)spec->r) : spec->alpha / (float)spec->r;
}

int lora_spec_check(const lora_spec_t *spec)
{
    if (spec->r < 1) return weft_error("LoRA rank r = %d: it must be at least 1", spec->r);
    if (!isfinite(spec->alpha)) return weft_error("LoRA alpha is not a finite number");
    if (spec->use_rslora != 0 && spec->use_rslora != 1)
        return weft_error("use_rslora = %d: it must be 0 or 1", spec->use_rslora);
    if (!spec->targets || ((spec->targets & ~LORA_ALL_LINEAR) >> LORA_NMODULES))
        return weft_error("LoRA targets mask 0x%x: choose one or more modules, or all-linear",
                          spec->targets);
    if (!(spec->dropout >= 0.0f && spec->dropout < 1.0f))
        return weft_error("LoRA dropout %g: it must be in [0, 1)", (double)spec->dropout);
    return 0;
}

/* Independent splitmix64 streams (rng.h) for initialisation and dropout
 * from one seed. */
static weft_rng_t stream(uint64_t seed, uint64_t salt)
{
    weft_rng_t r;
    rng_seed(&r, seed ^ salt);
    rng_seed(&r, rng_u64(&r));
    return r;
}

typedef struct {
    lora_spec_t spec;
    float scaling;
    size_t offset, size; /* slice of the flat buffers */
    size_t *a_off;       /* [L*4], SIZE_MAX when module not targeted */
    size_t *b_off;
    weft_rng_t rng; /* dropout stream */
    size_t row0, nrows;
} tenant_t;

struct lora_pack {
    int L, C, K;
    lora_dims_t dims;
    size_t max_rows;
    tenant_t *t;
    float *params, *grads, *m, *v; /* size floats each */
    size_t size;
    unsigned targets;  /* union over tenants */
    unsigned dropmods; /* modules some tenant drops out on */
    int r_max, training;
    float *h;       /* per (l, m in targets): max_rows x r_max, segment at row0*r_max */
    uint64_t *mask; /* per (l, m in dropmods): max_rows x words(in) keep bits */
    float *xd;      /* scratch: max_rows x widest input (dropped input, its gradient) */
    float *dh;      /* scratch: max_rows x r_max */
    size_t h_off[LORA_NMODULES], h_layer;       /* h of (l,m): h + l*h_layer + h_off[m] */
    size_t mask_off[LORA_NMODULES], mask_layer; /* likewise in mask */
};

static size_t mask_words(int in)
{
    return ((size_t)in + 63) / 64;
}

lora_pack_t *lora_pack_new(int n_layer, int n_embd, int n_tenants, const lora_spec_t *specs,
                           size_t max_rows)
{
    lora_dims_t dims;
    lora_dims_gpt2(n_embd, &dims);
    return lora_pack_new_dims(n_layer, &dims, n_tenants, specs, max_rows);
}

lora_pack_t *lora_pack_new_dims(int n_layer, const lora_dims_t *dims, int n_tenants,
                                const lora_spec_t *specs, size_t max_rows)
{
    int n_embd = dims->n_embd, in_max = 0;
    for (int m = 0; m < LORA_NMODULES; m++)
        if ((dims->modules >> m) & 1) {
            if (dims->in[m] > in_max) in_max = dims->in[m];
            if (dims->in[m] < 1 || dims->out[m] < 1) n_embd = -1;
        }
    if (n_layer < 1 || n_embd < 1 || n_tenants < 1 || max_rows < 1 || max_rows > INT_MAX) {
        weft_error("LoRA pack of %d tenants over L=%d C=%d with %zu rows: every size must be "
                   "at least 1, and rows fit an int",
                   n_tenants, n_layer, n_embd, max_rows);
        return NULL;
    }
    for (int k = 0; k < n_tenants; k++)
        if (lora_spec_check(&specs[k]) < 0) {
            weft_error_prefix("tenant %d", k);
            return NULL;
        }
    lora_pack_t *self = calloc(1, sizeof *self);
    if (!self) goto oom;
    self->L = n_layer, self->C = n_embd, self->K = n_tenants, self->max_rows = max_rows;
    self->dims = *dims;
    self->t = calloc((size_t)n_tenants, sizeof *self->t);
    if (!self->t) goto oom;
    size_t off = 0;
    for (int k = 0; k < n_tenants; k++) {
        tenant_t *t = &self->t[k];
        t->spec = specs[k];
        if (lora_targets_resolve(specs[k].targets, dims, &t->spec.targets) < 0) {
            weft_error_prefix("tenant %d", k);
            lora_pack_destroy(&self);
            return NULL;
        }
        t->scaling = lora_spec_scaling(&specs[k]);
        t->a_off = malloc((size_t)n_layer * LORA_NMODULES * sizeof *t->a_off);
        t->b_off = malloc((size_t)n_layer * LORA_NMODULES * sizeof *t->b_off);
        if (!t->a_off || !t->b_off) goto oom;
        t->offset = off;
        size_t r = (size_t)t->spec.r;
        for (int l = 0; l < n_layer; l++)
            for (int m = 0; m < LORA_NMODULES; m++) {
                size_t i = (size_t)l * LORA_NMODULES + (size_t)m;
                if (!(t->spec.targets & (1u << m))) {
                    t->a_off[i] = t->b_off[i] = SIZE_MAX;
                    continue;
                }
                int in = dims->in[m], out = dims->out[m];
                t->a_off[i] = off;
                off += r * (size_t)in;
                t->b_off[i] = off;
                off += (size_t)out * r;
            }
        t->size = off - t->offset;
        self->targets |= t->spec.targets;
        if (t->spec.dropout > 0.0f) self->dropmods |= t->spec.targets;
        if (t->spec.r > self->r_max) self->r_max = t->spec.r;
    }
    self->size = off;
    self->params = calloc(off, sizeof(float));
    self->grads = calloc(off, sizeof(float));
    self->m = calloc(off, sizeof(float));
    self->v = calloc(off, sizeof(float));
    for (int m = 0; m < LORA_NMODULES; m++) {
        int in = dims->in[m];
        self->h_off[m] = self->h_layer;
        if (self->targets & (1u << m)) self->h_layer += max_rows * (size_t)self->r_max;
        self->mask_off[m] = self->mask_layer;
        if (self->dropmods & (1u << m)) self->mask_layer += max_rows * mask_words(in);
    }
    self->h = calloc((size_t)n_layer * self->h_layer, sizeof(float));
    self->dh = calloc(max_rows * (size_t)self->r_max, sizeof(float));
    if (!self->params || !self->grads || !self->m || !self->v || !self->h || !self->dh) goto oom;
    if (self->dropmods) {
        self->mask = calloc((size_t)n_layer * self->mask_layer, sizeof(uint64_t));
        self->xd = calloc(max_rows * (size_t)in_max, sizeof(float));
        if (!self->mask || !self->xd) goto oom;
    }
    self->training = 1;
    for (int k = 0; k < n_tenants; k++) lora_pack_init_tenant(self, k);
    return self;
oom:
    lora_pack_destroy(&self);
    weft_error("out of memory for a LoRA pack of %d tenants (%zu rows)", n_tenants, max_rows);
    return NULL;
}

void lora_pack_destroy(lora_pack_t **self_p)
{
    lora_pack_t *self = *self_p;
    if (!self) return;
    if (self->t)
        for (int k = 0; k < self->K; k++) {
            free(self->t[k].a_off);
            free(self->t[k].b_off);
        }
    free(self->t);
    free(self->params);
    free(self->grads);
    free(self->m);
    free(self->v);
    free(self->h);
    free(self->dh);
    free(self->mask);
    free(self->xd);
    free(self);
    *self_p = NULL;
}

int lora_pack_tenants(const lora_pack_t *self)
{
    return self->K;
}
int lora_pack_layers(const lora_pack_t *self)
{
    return self->L;
}
int lora_pack_embd(const lora_pack_t *self)
{
    return self->C;
}
int lora_pack_module_dims(const lora_pack_t *self, int m, int *in, int *out)
{
    if (m < 0 || m >= LORA_NMODULES || !((self->dims.modules >> m) & 1)) return -1;
    *in = self->dims.in[m];
    *out = self->dims.out[m];
    return 0;
}
const lora_dims_t *lora_pack_dims(const lora_pack_t *self)
{
    return &self->dims;
}
size_t lora_pack_max_rows(const lora_pack_t *self)
{
    return self->max_rows;
}
const lora_spec_t *lora_pack_spec(const lora_pack_t *self, int k)
{
    return &self->t[k].spec;
}
unsigned lora_pack_targets(const lora_pack_t *self)
{
    return self->targets;
}
float *lora_pack_params(lora_pack_t *self)
{
    return self->params;
}
float *lora_pack_grads(lora_pack_t *self)
{
    return self->grads;
}
float *lora_pack_m(lora_pack_t *self)
{
    return self->m;
}
float *lora_pack_v(lora_pack_t *self)
{
    return self->v;
}
size_t lora_pack_size(const lora_pack_t *self)
{
    return self->size;
}
size_t lora_pack_tenant_offset(const lora_pack_t *self, int k)
{
    return self->t[k].offset;
}
size_t lora_pack_tenant_size(const lora_pack_t *self, int k)
{
    return self->t[k].size;
}
uint64_t lora_pack_rng(const lora_pack_t *self, int k)
{
    return self->t[k].rng.state;
}
void lora_pack_set_rng(lora_pack_t *self, int k, uint64_t state)
{
    self->t[k].rng.state = state;
}
void lora_pack_set_training(lora_pack_t *self, int training)
{
    self->training = training;
}

size_t lora_pack_tenant_state_bytes(const lora_pack_t *self, int k)
{
    return 4 * self->t[k].size * sizeof(float) + sizeof(tenant_t) +
           2 * (size_t)self->L * LORA_NMODULES * sizeof(size_t);
}

int lora_pack_offsets(const lora_pack_t *self, int k, int l, int m, size_t *a_off, size_t *b_off)
{
    if (k < 0 || k >= self->K || l < 0 || l >= self->L || m < 0 || m >= LORA_NMODULES) return -1;
    const tenant_t *t = &self->t[k];
    size_t i = (size_t)l * LORA_NMODULES + (size_t)m;
    if (t->a_off[i] == SIZE_MAX) return -1;
    *a_off = t->a_off[i];
    *b_off = t->b_off[i];
    return 0;
}

void lora_pack_init_tenant(lora_pack_t *self, int k)
{
    tenant_t *t = &self->t[k];
    weft_rng_t s = stream(t->spec.seed, 0x6c6f72612d696e69ull);
    for (int l = 0; l < self->L; l++)
        for (int m = 0; m < LORA_NMODULES; m++) {
            size_t a, b;
            if (lora_pack_offsets(self, k, l, m, &a, &b) < 0) continue;
            int in = self->dims.in[m], out = self->dims.out[m];
            float bound = 1.0f / sqrtf((float)in);
            float *A = self->params + a;
            for (size_t i = 0; i < (size_t)t->spec.r * (size_t)in; i++)
                A[i] = (2.0f * rng_uniform(&s) - 1.0f) * bound;
            memset(self->params + b, 0, (size_t)out * (size_t)t->spec.r * sizeof(float));
        }
    memset(self->grads + t->offset, 0, t->size * sizeof(float));
    memset(self->m + t->offset, 0, t->size * sizeof(float));
    memset(self->v + t->offset, 0, t->size * sizeof(float));
    t->rng = stream(t->spec.seed, 0x6c6f72612d64726full);
}

int lora_pack_set_rows(lora_pack_t *self, const size_t *row0, const size_t *nrows)
{
    for (int k = 0; k < self->K; k++) {
        if (nrows[k] == 0) continue;
        if (row0[k] > self->max_rows || nrows[k] > self->max_rows - row0[k])
            return weft_error("tenant %d rows [%zu, %zu) exceed the pack's %zu rows", k, row0[k],
                              row0[k] + nrows[k], self->max_rows);
        for (int j = 0; j < k; j++)
            if (nrows[j] && row0[j] < row0[k] + nrows[k] && row0[k] < row0[j] + nrows[j])
                return weft_error("tenants %d and %d own overlapping rows", j, k);
    }
    for (int k = 0; k < self->K; k++) {
        self->t[k].row0 = nrows[k] ? row0[k] : 0;
        self->t[k].nrows = nrows[k];
    }
    return 0;
}

/* Activations of (l,m): h rows and dropout mask rows. */
static float *h_of(lora_pack_t *self, int l, int m, const tenant_t *t)
{
    return self->h + (size_t)l * self->h_layer + self->h_off[m] + t->row0 * (size_t)self->r_max;
}

static uint64_t *mask_of(lora_pack_t *self, int l, int m, const tenant_t *t, int in)
{
    return self->mask + (size_t)l * self->mask_layer + self->mask_off[m] + t->row0 * mask_words(in);
}

/* Draws the segment's keep mask from the tenant's stream (row-major order)
 * and writes xd = inp * mask / (1-p). inp, xd are (n,in). */
static void dropout_forward(tenant_t *t, uint64_t *mask, float *xd, const float *inp, size_t n,
                            int in)
{
    uint64_t drop_below = (uint64_t)((double)t->spec.dropout * 16777216.0);
    float scale = 1.0f / (1.0f - t->spec.dropout);
    size_t words = mask_words(in);
    for (size_t i = 0; i < n; i++) {
        uint64_t *mrow = mask + i * words;
        memset(mrow, 0, words * sizeof *mrow);
        const float *x = inp + i * (size_t)in;
        float *y = xd + i * (size_t)in;
        for (int j = 0; j < in; j++) {
            int keep = (rng_u64(&t->rng) >> 40) >= drop_below;
            mrow[j >> 6] |= (uint64_t)keep << (j & 63);
            y[j] = keep ? x[j] * scale : 0.0f;
        }
    }
}

/* y = x * mask / (1-p) (add = 0) or y += x * mask / (1-p) (add = 1). */
static void apply_mask(const tenant_t *t, const uint64_t *mask, float *y, const float *x, size_t n,
                       int in, int add)
{
    float scale = 1.0f / (1.0f - t->spec.dropout);
    size_t words = mask_words(in);
    for (size_t i = 0; i < n; i++) {
        const uint64_t *mrow = mask + i * words;
        const float *xr = x + i * (size_t)in;
        float *yr = y + i * (size_t)in;
        for (int j = 0; j < in; j++) {
            float v = ((mrow[j >> 6] >> (j & 63)) & 1) ? xr[j] * scale : 0.0f;
            yr[j] = add ? yr[j] + v : v;
        }
    }
}

static int uses_dropout(const lora_pack_t *self, const tenant_t *t)
{
    return self->training && t->spec.dropout > 0.0f;
}

void lora_forward(lora_pack_t *self, int l, int m, float *out, const float *inp)
{
    int IC = self->dims.in[m], OC = self->dims.out[m];
    for (int k = 0; k < self->K; k++) {
        tenant_t *t = &self->t[k];
        size_t a, b;
        if (!t->nrows || lora_pack_offsets(self, k, l, m, &a, &b) < 0) continue;
        int n = (int)t->nrows, r = t->spec.r;
        const float *x = inp + t->row0 * (size_t)IC;
        float *h = h_of(self, l, m, t);
        if (uses_dropout(self, t)) {
            dropout_forward(t, mask_of(self, l, m, t, IC), self->xd, x, t->nrows, IC);
            x = self->xd;
        }
        /* h (n,r) = x (n,IC) . A^T, A is (r,IC) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, IC, 1.0f, x, IC,
                    self->params + a, IC, 0.0f, h, r);
        /* out (n,OC) += scaling * h (n,r) . B^T, B is (OC,r) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, OC, r, t->scaling, h, r,
                    self->params + b, r, 1.0f, out + t->row0 * (size_t)OC, OC);
    }
}

void lora_backward(lora_pack_t *self, int l, int m, float *dinp, const float *dout,
                   const float *inp)
{
    int IC = self->dims.in[m], OC = self->dims.out[m];
    for (int k = 0; k < self->K; k++) {
        tenant_t *t = &self->t[k];
        size_t a, b;
        if (!t->nrows || lora_pack_offsets(self, k, l, m, &a, &b) < 0) continue;
        int n = (int)t->nrows, r = t->spec.r;
        const float *x = inp + t->row0 * (size_t)IC;
        const float *dy = dout + t->row0 * (size_t)OC;
        float *dx = dinp ? dinp + t->row0 * (size_t)IC : NULL;
        const float *h = h_of(self, l, m, t);
        const float *A = self->params + a, *B = self->params + b;
        float *dA = self->grads + a, *dB = self->grads + b, *dh = self->dh;
        /* out = base + s * h B^T, h = xd A^T:
         * dB += s * dy^T h;  dh = s * dy B;  dA += dh^T xd;  dxd = dh A */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, r, n, t->scaling, dy, OC, h, r,
                    1.0f, dB, r);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, r, OC, t->scaling, dy, OC, B, r,
                    0.0f, dh, r);
        if (uses_dropout(self, t)) {
            const uint64_t *mask = mask_of(self, l, m, t, IC);
            apply_mask(t, mask, self->xd, x, t->nrows, IC, 0);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, IC, n, 1.0f, dh, r, self->xd,
                        IC, 1.0f, dA, IC);
            if (dx) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, IC, r, 1.0f, dh, r, A, IC,
                            0.0f, self->xd, IC);
                /* d drop(x)/dx = mask / (1-p) */
                apply_mask(t, mask, dx, self->xd, t->nrows, IC, 1);
            }
        } else {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, IC, n, 1.0f, dh, r, x, IC, 1.0f,
                        dA, IC);
            if (dx)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, IC, r, 1.0f, dh, r, A, IC,
                            1.0f, dx, IC);
        }
    }
}
