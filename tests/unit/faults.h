/*
 * faults.h - fault injection through the engine's I/O table (core/io.h).
 * A test arms a fault: the Nth call (counting from 1 after arming) of the
 * chosen operation fails with the chosen errno, or (for pwrite) writes only
 * the first `short_bytes` bytes and then fails.  faults_reset() restores
 * the real functions.
 */
#ifndef T4DX_FAULTS_H
#define T4DX_FAULTS_H

#include <stddef.h>

enum fault_op { FAULT_PWRITE, FAULT_FSYNC, FAULT_FDATASYNC, FAULT_FTRUNCATE,
		FAULT_RENAME, FAULT_OPEN, FAULT_NOPS };

/* Fail the nth call of op from now on with err; if sticky, every call from
 * the nth on fails. */
void faults_arm(enum fault_op op, unsigned nth, int err, int sticky);
/* Make the nth pwrite write only short_bytes bytes and then fail with err. */
void faults_arm_short_write(unsigned nth, size_t short_bytes, int err);
/* Install the wrappers without arming anything, so that faults_calls()
 * counts (faults_reset() zeroes the counts). */
void faults_count(void);
/* Calls of op seen since the last reset (counted only while the wrappers
 * are installed: after faults_arm*() or faults_count()). */
unsigned faults_calls(enum fault_op op);
void faults_reset(void);

/* Make a fresh empty directory under $TMPDIR (or /tmp); returns a static
 * path that stays valid until the next call.  rm_rf removes a tree. */
const char *unit_tmpdir(const char *tag);
void unit_rm_rf(const char *path);

#endif
