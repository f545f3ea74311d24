/**
 * The metadata schema, shared by every SQL dialect. Versioned tables keep one row per
 * version: a row is visible at CSN n when csn_from <= n < csn_to, and the live row has
 * csn_to = LIVE. "The filespace at CSN n" is therefore a query, never a copy.
 */
export const LIVE = Number.MAX_SAFE_INTEGER;
export const SCHEMA_VERSION = 1;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value {int} NOT NULL);
CREATE TABLE IF NOT EXISTS inodes (
  ino {int} NOT NULL, csn_from {int} NOT NULL, csn_to {int} NOT NULL,
  mode {int} NOT NULL, uid {int} NOT NULL, gid {int} NOT NULL, size {int} NOT NULL,
  nlink {int} NOT NULL, rdev {int} NOT NULL,
  atime_ms {int} NOT NULL, mtime_ms {int} NOT NULL, ctime_ms {int} NOT NULL, crtime_ms {int} NOT NULL,
  target {blob},
  PRIMARY KEY (ino, csn_from));
CREATE INDEX IF NOT EXISTS inodes_live ON inodes (csn_to, ino);
CREATE TABLE IF NOT EXISTS dentries (
  parent {int} NOT NULL, hash {blob} NOT NULL, csn_from {int} NOT NULL, csn_to {int} NOT NULL,
  name_enc {blob} NOT NULL, ino {int} NOT NULL, mode {int} NOT NULL,
  PRIMARY KEY (parent, hash, csn_from));
CREATE INDEX IF NOT EXISTS dentries_live ON dentries (parent, csn_to, hash);
CREATE INDEX IF NOT EXISTS dentries_ino ON dentries (ino, csn_to);
CREATE INDEX IF NOT EXISTS dentries_since ON dentries (parent, csn_from);
CREATE TABLE IF NOT EXISTS blocks (
  ino {int} NOT NULL, idx {int} NOT NULL, csn_from {int} NOT NULL, csn_to {int} NOT NULL,
  object_id TEXT NOT NULL, length {int} NOT NULL,
  PRIMARY KEY (ino, idx, csn_from));
CREATE INDEX IF NOT EXISTS blocks_live ON blocks (ino, csn_to, idx);
CREATE INDEX IF NOT EXISTS blocks_object ON blocks (object_id);
CREATE TABLE IF NOT EXISTS xattrs (
  ino {int} NOT NULL, hash {blob} NOT NULL, csn_from {int} NOT NULL, csn_to {int} NOT NULL,
  name_enc {blob} NOT NULL, value_enc {blob} NOT NULL,
  PRIMARY KEY (ino, hash, csn_from));
CREATE INDEX IF NOT EXISTS xattrs_live ON xattrs (ino, csn_to, hash);
CREATE TABLE IF NOT EXISTS commits (csn {int} PRIMARY KEY, time_ms {int} NOT NULL);
CREATE TABLE IF NOT EXISTS changes (csn {int} NOT NULL, ino {int} NOT NULL, PRIMARY KEY (csn, ino));
CREATE TABLE IF NOT EXISTS locks (
  ino {int} NOT NULL, owner TEXT NOT NULL, kind TEXT NOT NULL, type TEXT NOT NULL,
  start_b {int} NOT NULL, end_b {int} NOT NULL, pid {int} NOT NULL);
CREATE INDEX IF NOT EXISTS locks_ino ON locks (ino);
CREATE TABLE IF NOT EXISTS snapshots (id {int} PRIMARY KEY, name TEXT NOT NULL, csn {int} NOT NULL, created_ms {int} NOT NULL, schedule TEXT);
CREATE TABLE IF NOT EXISTS snapshot_schedules (name TEXT PRIMARY KEY, every_ms {int} NOT NULL, keep {int} NOT NULL, last_ms {int} NOT NULL);
CREATE TABLE IF NOT EXISTS lock_leases (client TEXT PRIMARY KEY, expires_ms {int} NOT NULL);
`;
