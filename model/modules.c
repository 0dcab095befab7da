/* modules.c: the LoRA module table (see modules.h). */
#include "model/modules.h"
#include "common/log.h"
#include "common/suggest.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name; /* job spec and adapter `targets` */
    const char *path; /* HDF5 group under a block */
    const char *peft; /* PEFT target_modules */
} modules[LORA_NMODULES] = {
    [LORA_ATTN_C_ATTN] = {"attn.c_attn", "attn/c_attn", "c_attn"},
    [LORA_ATTN_C_PROJ] = {"attn.c_proj", "attn/c_proj", "attn.c_proj"},
    [LORA_MLP_C_FC] = {"mlp.c_fc", "mlp/c_fc", "c_fc"},
    [LORA_MLP_C_PROJ] = {"mlp.c_proj", "mlp/c_proj", "mlp.c_proj"},
    [LORA_Q_PROJ] = {"self_attn.q_proj", "self_attn/q_proj", "q_proj"},
    [LORA_K_PROJ] = {"self_attn.k_proj", "self_attn/k_proj", "k_proj"},
    [LORA_V_PROJ] = {"self_attn.v_proj", "self_attn/v_proj", "v_proj"},
    [LORA_O_PROJ] = {"self_attn.o_proj", "self_attn/o_proj", "o_proj"},
    [LORA_GATE_PROJ] = {"mlp.gate_proj", "mlp/gate_proj", "gate_proj"},
    [LORA_UP_PROJ] = {"mlp.up_proj", "mlp/up_proj", "up_proj"},
    [LORA_DOWN_PROJ] = {"mlp.down_proj", "mlp/down_proj", "down_proj"},
};
#define ALL_LINEAR "all-linear"
/* The known names in an unknown module's error, compactly. */
#define KNOWN                                                                                      \
    "attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj (gpt2); self_attn.{q,k,v,o}_proj, "            \
    "mlp.{gate,up,down}_proj (llama); all-linear"

_Static_assert(MODULES_ALL_LINEAR >> LORA_NMODULES, "all-linear is a bit of no module");

const char *module_name(int m)
{
    return m >= 0 && m < LORA_NMODULES ? modules[m].name : "?";
}

const char *module_path(int m)
{
    return m >= 0 && m < LORA_NMODULES ? modules[m].path : "?";
}

const char *module_blocks(int m)
{
    return (MODULES_LLAMA >> m) & 1 ? "model/layers" : "h";
}

const char *module_peft_name(int m)
{
    return m >= 0 && m < LORA_NMODULES ? modules[m].peft : "?";
}

unsigned modules_of(model_arch_t arch)
{
    return arch == ARCH_LLAMA ? MODULES_LLAMA : MODULES_GPT2;
}

int modules_names(unsigned mask, const char **names)
{
    int n = 0;
    for (int m = 0; m < LORA_NMODULES; m++)
        if ((mask >> m) & 1) names[n++] = modules[m].name;
    if (mask & MODULES_ALL_LINEAR) names[n++] = ALL_LINEAR;
    return n;
}

/* "a, b, c" of the modules in mask, for messages. */
static const char *names_of(unsigned mask, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = 0;
    for (int m = 0; m < LORA_NMODULES && n + 1 < size; m++)
        if ((mask >> m) & 1)
            n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? ", " : "", modules[m].name);
    return buf;
}

int modules_resolve(unsigned targets, model_arch_t arch, unsigned *out)
{
    unsigned have = modules_of(arch), named = targets & ~MODULES_ALL_LINEAR;
    for (int m = 0; m < LORA_NMODULES; m++)
        if ((named >> m) & 1 && !((have >> m) & 1)) {
            char list[256];
            return weft_error("LoRA target '%s' is not a module of a %s model (choose from %s, "
                              "or all-linear)",
                              modules[m].name, arch == ARCH_LLAMA ? "llama" : "gpt2",
                              names_of(have, list, sizeof list));
        }
    *out = targets & MODULES_ALL_LINEAR ? have : named;
    return 0;
}

int modules_add(unsigned *mask, const char *name)
{
    const char *known[LORA_NMODULES + 1];
    int n = modules_names(MODULES_GPT2 | MODULES_LLAMA | MODULES_ALL_LINEAR, known);
    unsigned bit = 0;
    for (int i = 0; name && i < n; i++)
        if (!strcmp(name, known[i])) bit = i < LORA_NMODULES ? MODULE_BIT(i) : MODULES_ALL_LINEAR;
    if (!bit) {
        int c = name ? weft_closest(name, known, n) : -1;
        return weft_error("unknown module %s%.40s%s%s%s%s; known: " KNOWN,
                          name ? "\"" : "(not a string)", name ? name : "", name ? "\"" : "",
                          c >= 0 ? " (did you mean \"" : "", c >= 0 ? known[c] : "",
                          c >= 0 ? "\"?)" : "");
    }
    if (*mask & bit) return weft_error("module \"%s\" is listed twice", name);
    *mask |= bit;
    return 0;
}

int modules_parse(const char *list, unsigned *mask)
{
    *mask = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        const char *end = p;
        while (*end && *end != ',') end++;
        const char *stop = end;
        while (stop > p && (stop[-1] == ' ' || stop[-1] == '\t')) stop--;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(stop - p), p);
        if (modules_add(mask, name) < 0) return -1;
        p = *end ? end + 1 : end;
        if (*end && !*p) return weft_error("LoRA target list '%s' ends with a comma", list);
    }
    if (!*mask)
        return weft_error("empty LoRA target list: name at least one module, e.g. attn.c_attn");
    return 0;
}

int modules_format(unsigned mask, char *buf, size_t size)
{
    const char *names[LORA_NMODULES + 1];
    int k = modules_names(mask, names);
    size_t n = 0;
    if (size) buf[0] = 0;
    for (int i = 0; i < k; i++) {
        size_t len = strlen(names[i]);
        if (n + (n ? 1 : 0) + len + 1 > size)
            return weft_error("LoRA target list does not fit in %zu bytes", size);
        if (n) buf[n++] = ',';
        memcpy(buf + n, names[i], len + 1);
        n += len;
    }
    return 0;
}
