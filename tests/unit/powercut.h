/*
 * powercut.h - a simulated power cut through the engine's I/O table.
 * powercut_install() tracks, for every file the engine opens for writing,
 * how long it was at its last fsync/fdatasync; powercut_now() makes every
 * later I/O call fail and truncates each tracked file back to that length,
 * as a machine that loses power keeps only what was synced.  (Directory
 * entries are not modelled: renames and creations count as durable.)
 */
#ifndef T4DX_POWERCUT_H
#define T4DX_POWERCUT_H

void powercut_install(void);
/* Returns the number of bytes dropped. */
long powercut_now(void);

#endif
