/* test_tenant_path.c: tenant_publish on a real file system: it makes the
 * folders it needs (0700) and publishes through them; a symlink anywhere
 * below the tenant's folder is refused before anything is made through it
 * (the old check made the folders first, outside the tenant's, then looked);
 * a link planted where the file goes is replaced, not followed; ".." is
 * refused; the tenant's folder itself may be the admin's link. Published
 * versions (common/versions.h) inside a tenant folder: a planted link is
 * neither walked through nor taken for `current`, and replaced by the real
 * one; a run installs one version however often it is repeated. */
#include "common/log.h"
#include "scheduler/tenant_path.h"
#include "common/versions.h"
#include "tests/check_main.h"

#include <fcntl.h>

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char top[PATH_MAX], tenants[PATH_MAX + 16], src[PATH_MAX + 16], outside[PATH_MAX + 16];

static void setup(void)
{
    snprintf(top, sizeof top, "/tmp/weft-test-tenant-path-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(top));
    snprintf(tenants, sizeof tenants, "%s/tenants", top);
    snprintf(outside, sizeof outside, "%s/outside", top);
    snprintf(src, sizeof src, "%s/src.h5", top);
    ck_assert_int_eq(mkdir(tenants, 0700), 0);
    ck_assert_int_eq(mkdir(outside, 0700), 0);
    char acme[PATH_MAX + 32];
    snprintf(acme, sizeof acme, "%s/acme", tenants);
    ck_assert_int_eq(mkdir(acme, 0700), 0);
    FILE *f = fopen(src, "w");
    ck_assert_ptr_nonnull(f);
    fputs("adapter bytes", f);
    fclose(f);
}

static void teardown(void)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    ck_assert_int_eq(system(cmd), 0);
}

static char *path(const char *rel)
{
    static char p[4][PATH_MAX + 64];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", top, rel);
    return p[k];
}

static int is_file_with(const char *p, const char *text)
{
    char buf[64] = "";
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return !strcmp(buf, text);
}

START_TEST(publishes_and_makes_folders)
{
    ck_assert_int_eq(tenant_publish(tenants, src, path("tenants/acme/runs/n1/acme/adapter.h5")), 0);
    ck_assert(is_file_with(path("tenants/acme/runs/n1/acme/adapter.h5"), "adapter bytes"));
    struct stat st;
    ck_assert_int_eq(stat(path("tenants/acme/runs/n1"), &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    ck_assert_int_ne(access(path("tenants/acme/runs/n1/acme/adapter.h5.tmp"), F_OK), 0);
    /* again: replaced in place */
    ck_assert_int_eq(tenant_publish(tenants, src, path("tenants/acme/runs/n1/acme/adapter.h5")), 0);
}
END_TEST

START_TEST(a_symlinked_folder_is_refused_and_nothing_made_outside)
{
    ck_assert_int_eq(symlink(outside, path("tenants/acme/escape")), 0);
    ck_assert_int_eq(tenant_publish(tenants, src, path("tenants/acme/escape/deep/er/adapter.h5")), -1);
    ck_assert_ptr_nonnull(strstr(weft_last_error(), "escape is a symlink"));
    ck_assert_int_ne(access(path("outside/deep"), F_OK), 0);
    /* a link deeper down, below folders that exist */
    ck_assert_int_eq(mkdir(path("tenants/acme/a"), 0700), 0);
    ck_assert_int_eq(symlink(outside, path("tenants/acme/a/b")), 0);
    ck_assert_int_eq(tenant_publish(tenants, src, path("tenants/acme/a/b/adapter.h5")), -1);
    ck_assert_int_ne(access(path("outside/adapter.h5"), F_OK), 0);
}
END_TEST

START_TEST(a_link_where_the_file_goes_is_replaced_not_followed)
{
    ck_assert_int_eq(mkdir(path("tenants/acme/out"), 0700), 0);
    FILE *f = fopen(path("outside/victim"), "w");
    fputs("keep", f);
    fclose(f);
    ck_assert_int_eq(symlink(path("outside/victim"), path("tenants/acme/out/adapter.h5")), 0);
    ck_assert_int_eq(symlink(path("outside/victim2"), path("tenants/acme/out/adapter.h5.tmp")), 0);
    ck_assert_int_eq(tenant_publish(tenants, src, path("tenants/acme/out/adapter.h5")), 0);
    ck_assert(is_file_with(path("outside/victim"), "keep"));
    ck_assert_int_ne(access(path("outside/victim2"), F_OK), 0);
    struct stat st;
    ck_assert_int_eq(lstat(path("tenants/acme/out/adapter.h5"), &st), 0);
    ck_assert(S_ISREG(st.st_mode));
}
END_TEST

START_TEST(dot_dot_and_outside_paths_are_refused)
{
    ck_assert_int_eq(tenant_publish(tenants, src, path("tenants/acme/../x/adapter.h5")), -1);
    ck_assert_int_ne(access(path("tenants/x"), F_OK), 0);
    ck_assert_int_eq(tenant_publish(tenants, src, path("outside/adapter.h5")), -1);
    ck_assert_int_eq(tenant_publish(tenants, src, path("tenants/acme")), -1);
}
END_TEST

START_TEST(the_tenant_folder_may_be_the_admins_link)
{
    ck_assert_int_eq(mkdir(path("outside/globex"), 0700), 0);
    ck_assert_int_eq(symlink(path("outside/globex"), path("tenants/globex")), 0);
    ck_assert_int_eq(tenant_publish(tenants, src, path("tenants/globex/o/adapter.h5")), 0);
    ck_assert(is_file_with(path("outside/globex/o/adapter.h5"), "adapter bytes"));
}
END_TEST

/* A staged version folder "new" in dfd with a version.json of run. */
static void stage(int dfd, const char *run)
{
    ck_assert_int_eq(mkdirat(dfd, "new", 0700), 0);
    int fd = openat(dfd, "new/version.json", O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    char text[64];
    int n = snprintf(text, sizeof text, "{\"run\": \"%s\"}", run);
    ck_assert_int_eq(write(fd, text, (size_t)n), n);
    close(fd);
}

START_TEST(versions_follow_no_link_in_the_tenant_folder)
{
    ck_assert_int_eq(symlink(outside, path("tenants/acme/out")), 0);
    ck_assert_int_lt(tenant_open_dir(tenants, path("tenants/acme/out/a")), 0);
    int dfd = tenant_open_dir(tenants, path("tenants/acme/pub/a"));
    ck_assert_int_ge(dfd, 0);
    ck_assert_int_eq(symlinkat(outside, dfd, "current"), 0);
    int n = -1;
    ck_assert_int_lt(versions_current(dfd, &n), 0); /* not a v<N> of this folder */
    stage(dfd, "run-1");
    ck_assert_int_eq(versions_install(dfd, "new", "run-1", &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(versions_promote(dfd, 1), 0);
    char target[64] = "";
    ck_assert_int_gt(readlinkat(dfd, "current", target, sizeof target - 1), 0);
    ck_assert_str_eq(target, "v1");
    ck_assert_int_eq(versions_current(dfd, &n), 0);
    ck_assert_int_eq(n, 1);
    stage(dfd, "run-1"); /* the same run's DONE again: no second version */
    ck_assert_int_eq(versions_install(dfd, "new", "run-1", &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_ne(faccessat(dfd, "new", F_OK, AT_SYMLINK_NOFOLLOW), 0);
    stage(dfd, "run-2");
    ck_assert_int_eq(versions_install(dfd, "new", "run-2", &n), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(versions_prune(dfd, 1), 0); /* v2 newest, v1 current: both stay */
    ck_assert_int_eq(faccessat(dfd, "v1", F_OK, AT_SYMLINK_NOFOLLOW), 0);
    ck_assert_int_eq(faccessat(dfd, "v2", F_OK, AT_SYMLINK_NOFOLLOW), 0);
    close(dfd);
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", outside);
    ck_assert_int_eq(system(cmd), 0); /* nothing was made outside */
}
END_TEST

int main(void)
{
    check_test_t tests[] = {CHECK_TEST(publishes_and_makes_folders),
                            CHECK_TEST(a_symlinked_folder_is_refused_and_nothing_made_outside),
                            CHECK_TEST(a_link_where_the_file_goes_is_replaced_not_followed),
                            CHECK_TEST(dot_dot_and_outside_paths_are_refused),
                            CHECK_TEST(the_tenant_folder_may_be_the_admins_link),
                            CHECK_TEST(versions_follow_no_link_in_the_tenant_folder)};
    int failed =
        check_main((check_opts_t){.suite = "tenant_path", .setup = setup, .teardown = teardown},
                   tests, CHECK_NTESTS(tests));
    return failed ? 1 : 0;
}
