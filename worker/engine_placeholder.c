/* engine_placeholder.c: removed when the engine lands (issue 3). */
int weft_engine_placeholder(void);
int weft_engine_placeholder(void)
{
    return 0;
}
