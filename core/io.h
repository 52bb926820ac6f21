/*
 * io.h - every system call the engine makes on DATA_DIR goes through
 * t4dx_io, one table of function pointers, so that a unit test can fail the
 * Nth write or fdatasync with a chosen errno or cut a write short.
 * The defaults are the libc functions.  Tests replace entries and call
 * t4dx_io_reset() afterwards.
 */
#ifndef T4DX_IO_H
#define T4DX_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

struct t4dx_io {
	int (*open)(const char *path, int flags, mode_t mode);
	int (*close)(int fd);
	ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
	ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
	/* the WAL's padding ahead of its records (best effort, never
	 * relied on): apart from pwrite so that tests that count or fail
	 * the writes of records, or model what a power cut keeps of them,
	 * see those alone */
	ssize_t (*pad)(int fd, const void *buf, size_t len, off_t off);
	int (*fsync)(int fd);
	int (*fdatasync)(int fd);
	int (*ftruncate)(int fd, off_t len);
	int (*rename)(const char *from, const char *to);
	int (*unlink)(const char *path);
	int (*mkdir)(const char *path, mode_t mode);
	/* 0 if fd is still the file linked at path; ESTALE if the file was
	 * removed or replaced behind the daemon's back (rm -rf DATA/wal),
	 * else an errno */
	int (*linked)(int fd, const char *path);
};

extern struct t4dx_io t4dx_io;
void t4dx_io_reset(void);

/* Write all of buf at off (retrying short writes and EINTR).
 * Returns 0 or a positive errno. */
int t4dx_io_pwrite_all(int fd, const void *buf, size_t len, off_t off);
/* Read exactly len bytes at off; a short file is T4DX_ECORRUPT. */
int t4dx_io_pread_all(int fd, void *buf, size_t len, off_t off);
/* fsync the directory at path.  0 or positive errno. */
int t4dx_io_fsync_dir(const char *path);
/* Durably replace dir/name with p[0..len): write dir/name.tmp (a fresh
 * file of our own, 0600, never one planted under that name), fsync it,
 * rename it over dir/name, fsync dir.  0 or a positive errno; on failure
 * the temporary file is gone.  *installed (may be NULL) tells whether the
 * rename happened: if so and only the directory fsync failed, either the
 * old or the new file may be the one found after a crash. */
int t4dx_io_write_durably(const char *dir, const char *name, const void *p,
			  size_t len, bool *installed);
/* mkdir path 0700 (private: the store holds every user's content); an
 * existing directory is fine, anything else there is ENOTDIR.  *made (may
 * be NULL) tells whether it was new, and so needs its parent fsync'ed. */
int t4dx_io_make_dir(const char *path, bool *made);
/* Move the file at path into the directory qdir (which must exist) as
 * base, or base.1, base.2, ... if that is taken: nothing in a quarantine
 * is ever replaced.  The new path goes to to[0..tolen).  0 or an errno;
 * the caller fsyncs the directories. */
int t4dx_io_quarantine(const char *path, const char *qdir, const char *base,
		       char *to, size_t tolen);
/* The k-th name t4dx_io_quarantine tries: qdir/base, then qdir/base.K. */
void t4dx_io_quarantine_name(char *out, size_t n, const char *qdir,
			     const char *base, int k);

/* For the readers of a store that change nothing (read-only open,
 * t4dx_verify): take a shared flock on dir/LOCK, which excludes a
 * daemon's exclusive one (and keeps a daemon from starting meanwhile).
 * *fd gets the descriptor to close (-1 if there is no LOCK to take: a
 * copy of a store).  0, T4DX_ELOCKED naming the holder in msg, or an
 * errno. */
int t4dx_io_lock_shared(const char *dir, int *fd, char *msg, size_t msglen);
/* Is dir a t4dx data directory?  It has wal/ or a MANIFEST. */
bool t4dx_io_is_store(const char *dir);
/* For those readers: dir is a directory this process may read, whose
 * wal/, seg/ and MANIFEST it may read, and a store.  0, or the errno
 * (ENOENT, ENOTDIR, EACCES...) or T4DX_EFORMAT, with msg. */
int t4dx_io_check_store(const char *dir, char *msg, size_t msglen);

#endif
