/*
 * dedup.c - open-addressing hash set of strings with a FIFO ring for eviction. When the ring is
 * full the oldest key is removed (backward-shift deletion keeps probe chains intact).
 */
#include "dedup.h"

#include <stdint.h>
#include <string.h>

#include "qn/mem.h"

struct qn_dedup {
    size_t capacity; /* keys kept */
    size_t slots;    /* hash table size, a power of two > 2 * capacity */
    char **table;
    char **ring; /* insertion order; ring[head] is the oldest */
    size_t head;
    size_t count;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

qn_err_t qn_dedup_new(size_t capacity, struct qn_dedup **out)
{
    struct qn_dedup *set = qn_calloc(1, sizeof(*set));
    if (set == NULL) {
        return QN_ERR_NOMEM;
    }
    set->capacity = capacity;
    set->slots = 16;
    while (set->slots < capacity * 2 + 1) {
        set->slots *= 2;
    }
    set->table = qn_calloc(set->slots, sizeof(char *));
    set->ring = qn_calloc(capacity > 0 ? capacity : 1, sizeof(char *));
    if (set->table == NULL || set->ring == NULL) {
        qn_dedup_free(set);
        return QN_ERR_NOMEM;
    }
    *out = set;
    return QN_OK;
}

void qn_dedup_free(struct qn_dedup *set)
{
    if (set == NULL) {
        return;
    }
    if (set->table != NULL) {
        for (size_t i = 0; i < set->slots; i++) {
            qn_free(set->table[i]);
        }
    }
    qn_free(set->table);
    qn_free(set->ring);
    qn_free(set);
}

static size_t find_slot(const struct qn_dedup *set, const char *key)
{
    size_t mask = set->slots - 1;
    size_t i = (size_t)hash_str(key) & mask;
    while (set->table[i] != NULL && strcmp(set->table[i], key) != 0) {
        i = (i + 1) & mask;
    }
    return i;
}

static void remove_key(struct qn_dedup *set, const char *key)
{
    size_t mask = set->slots - 1;
    size_t i = find_slot(set, key);
    if (set->table[i] == NULL) {
        return;
    }
    qn_free(set->table[i]);
    set->table[i] = NULL;
    /* backward-shift the following entries of the cluster */
    size_t j = (i + 1) & mask;
    while (set->table[j] != NULL) {
        size_t home = (size_t)hash_str(set->table[j]) & mask;
        int movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            set->table[i] = set->table[j];
            set->table[j] = NULL;
            i = j;
        }
        j = (j + 1) & mask;
    }
}

int qn_dedup_contains(const struct qn_dedup *set, const char *key)
{
    return set->capacity > 0 && set->table[find_slot(set, key)] != NULL;
}

int qn_dedup_check_add(struct qn_dedup *set, const char *key)
{
    if (set->capacity == 0) {
        return 0;
    }
    size_t slot = find_slot(set, key);
    if (set->table[slot] != NULL) {
        return 1;
    }
    char *copy = qn_strdup(key);
    if (copy == NULL) {
        return -1;
    }
    if (set->count == set->capacity) {
        remove_key(set, set->ring[set->head]);
        set->ring[set->head] = NULL;
        set->head = (set->head + 1) % set->capacity;
        set->count--;
        slot = find_slot(set, key);
    }
    set->table[slot] = copy;
    set->ring[(set->head + set->count) % set->capacity] = copy;
    set->count++;
    return 0;
}

size_t qn_dedup_size(const struct qn_dedup *set)
{
    return set->count;
}
