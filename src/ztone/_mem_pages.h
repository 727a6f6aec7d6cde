/*
 * Scratch buffers mapped straight from the kernel and unmapped when done (issue 17,
 * memory). Included by _speedups.c.
 *
 * Why not malloc: glibc serves a large request with its own mapping, but freeing that
 * mapping raises its mmap threshold to the freed size (up to 32 MB). The identity
 * hash's 2 MB scratch, malloc'd and freed once, therefore made every later one come
 * from the heap, where the 2 MB stayed resident after the free (the heap's top is only
 * trimmed above a threshold that rises with it): about +1.8 MB RSS for the life of any
 * daemon that checked a second identity. Mapped here, the pages go back on every free
 * and malloc's thresholds are never touched.
 */
#ifndef ZTONE_MEM_PAGES_H
#define ZTONE_MEM_PAGES_H

#include <stddef.h>
#include <sys/mman.h>

/* n bytes of fresh zeroed pages, or NULL. */
static void *pages_alloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Give pages_alloc's n bytes back to the kernel (p may be NULL). */
static void pages_free(void *p, size_t n)
{
    if (p != NULL)
        munmap(p, n);
}

#endif
