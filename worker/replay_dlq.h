/*
 * replay_dlq.h - `quench replay-dlq --config FILE [--reason CODE]... [--dry-run] [--max N]`:
 * sends dead-lettered records back to the topic they came from.
 *
 * A fresh consumer (no group, nothing committed) is assigned every partition of topics.dlq from
 * its low watermark and reads up to the high watermarks taken at the start, then stops: records
 * dead-lettered while it runs (a replayed record that fails again, say) wait for the next run.
 * Each record is replayed when
 *   - its quench.reason.code header is one of the --reason codes (every code without --reason),
 *   - it is complete: a quench.truncated=true copy holds only a prefix of the original bytes
 *     (the whole record is still at quench.original.topic/partition/offset), so it is skipped,
 *   - its quench.original.topic header names topics.input or topics.verdicts: anything else is
 *     skipped, never sent to a topic quench does not read.
 * A replayed record is the DLQ record's value and key, produced to the original topic and, when
 * that partition still exists, to the original partition (quench.original.partition), with the
 * headers quench.replay.attempt (the DLQ record's quench.attempt + 1; 2 when it has none),
 * quench.replay.source ("DLQTOPIC/PARTITION/OFFSET" of the DLQ record), quench.replay.original
 * ("TOPIC/PARTITION/OFFSET" it was first read at, when the headers say) and quench.replay.reason
 * (the reason code it was dead-lettered for). The producer is idempotent (acks=all) and flushed
 * before the summary is printed.
 *
 * The summary goes to stdout, one "replay-dlq: ..." line per count: records read, replayed (by
 * topic and by reason code), skipped as not selected by --reason (by code), truncated (by code)
 * and with another original topic (by topic). --dry-run reads and counts the same way and
 * produces nothing ("would replay"). --max N stops after N records were replayed.
 *
 * It is a short-lived command line tool: librdkafka's blocking calls are used directly.
 */
#ifndef QN_REPLAY_DLQ_H
#define QN_REPLAY_DLQ_H

/*
 * @brief Runs the command. @p argv[0] is "replay-dlq", the options follow; @p envp holds the
 *        QUENCH_* overrides (NULL-terminated, may be NULL).
 * @returns the exit status: 0 done (even when records were skipped), 1 usage error, 70 a Kafka
 *          error (the DLQ could not be read to the end, or a record was not delivered),
 *          78 bad configuration.
 */
int qn_replay_dlq_main(int argc, char **argv, char **envp);

#endif
