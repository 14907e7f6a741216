/*
 * mem.h - the allocator every quench module uses, with failure injection for tests.
 *
 * qn_malloc/qn_calloc/qn_realloc/qn_free wrap libc. A test can make the Nth allocation fail
 * (qn_mem_fail_after) so every out-of-memory path is exercised. cJSON is routed here too.
 */
#ifndef QN_MEM_H
#define QN_MEM_H

#include <stddef.h>

void *qn_malloc(size_t size) __attribute__((malloc));
void *qn_calloc(size_t count, size_t size) __attribute__((malloc));
void *qn_realloc(void *ptr, size_t size);
void qn_free(void *ptr);

/* @returns a heap copy of @p s (NULL if @p s is NULL or on failure). Free with qn_free. */
char *qn_strdup(const char *s);

/* @returns a heap copy of @p len bytes of @p s plus a terminating NUL. Free with qn_free. */
char *qn_strndup(const char *s, size_t len);

/* Erases then frees a secret string. Accepts NULL. */
void qn_free_secret(char *s);

/*
 * Test hook: the allocation after @p n more successful ones fails (once; later ones succeed again);
 * -1 turns injection off.
 */
void qn_mem_fail_after(long n);

/* Routes cJSON's allocations through qn_malloc/qn_free. Call once at start. */
void qn_mem_install_cjson_hooks(void);

#endif
