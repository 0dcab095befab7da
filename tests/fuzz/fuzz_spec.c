/* fuzz_spec.c: libFuzzer target for the job-spec parser and validator: the
 * input is spec text; a spec that parses is expanded into units, written back
 * in canonical form and parsed again, which must give an equal spec. */
#include "jobs/spec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    spec_limits_t lim = spec_limits_default();
    lim.max_tenants = 64;
    lim.max_trials = 256;
    lim.max_units = 512;
    spec_diag_t *diag = spec_diag_new();
    spec_t *spec =
        spec_parse((const char *)data, size, "/nonexistent/fuzz", "fuzz.cfg", &lim, diag);
    for (int i = 0; i < spec_diag_count(diag); i++) (void)spec_diag_get(diag, i);
    spec_diag_destroy(&diag);
    if (!spec) return 0;

    spec_unit_t *units = NULL;
    int n = 0;
    if (spec_expand(spec, &lim, &units, &n, NULL) == 0) spec_units_destroy(&units, n);

    char *text = spec_write(spec);
    if (!text) abort();
    spec_t *again = spec_parse(text, strlen(text), "/nonexistent/fuzz", "fuzz.cfg", NULL, NULL);
    if (!again || !spec_equal(spec, again)) {
        fprintf(stderr, "canonical text does not parse back to an equal spec:\n%s\n", text);
        abort();
    }
    char hex[65];
    spec_resume_hash(spec, hex);
    spec_destroy(&again);
    free(text);
    spec_destroy(&spec);
    return 0;
}
