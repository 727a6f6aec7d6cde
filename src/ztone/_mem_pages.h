/*
 * Scratch buffers mapped straight from the kernel and unmapped when done (issue 17,
 * memory), and the heap trim. Included by _speedups.c.
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

#include <Python.h>
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

/* trim_heap(): glibc's malloc_trim(0), which gives the free pages of every malloc arena
   back to the kernel, those in the middle of the heap included (free() only ever
   returns the heap's top, and only above a threshold). A daemon's start-up, joins and
   bursts leave such pages behind: 0.5-1.8 MB measured idle (bench/memory.py). Other C
   libraries have no such call: there the function is absent. */
#if defined(__GLIBC__)
#include <malloc.h>

PyDoc_STRVAR(trim_heap_doc,
"trim_heap() -> bool\n\n"
"glibc's malloc_trim(0): the free pages of every malloc arena go back to the kernel.\n"
"True if any did. Releases the GIL. Absent where the C library is not glibc.");

static PyObject *sp_trim_heap(PyObject *self, PyObject *noargs)
{
    int released;
    (void)self;
    (void)noargs;
    Py_BEGIN_ALLOW_THREADS
    released = malloc_trim(0);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(released);
}

#define MEM_PAGES_METHODS {"trim_heap", sp_trim_heap, METH_NOARGS, trim_heap_doc},
#else
#define MEM_PAGES_METHODS
#endif

#endif
