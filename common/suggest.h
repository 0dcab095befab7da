/* suggest.h: "did you mean": the edit distance between two names, and the
 * closest of a list of known names, for error messages that name what the
 * user probably meant (job spec settings, LoRA module names). */
#ifndef WEFT_SUGGEST_H
#define WEFT_SUGGEST_H

/* Edits (insert, delete, substitute, swap neighbours) from a to b; 99 for
 * names longer than 63 characters. */
int weft_edit_distance(const char *a, const char *b);
/* The index of the name in names[0..count) closest to s, when it is within
 * 3 edits (the first of equals); -1 when none is. */
int weft_closest(const char *s, const char *const *names, int count);

#endif
