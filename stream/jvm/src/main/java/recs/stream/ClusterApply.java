// Twin of state/cluster_writes.py: RedisApply's conditional batch write on a Redis Cluster. A
// script may only touch one slot, so the batch is grouped by slot (JedisClusterCRC16: the slot
// Redis computes, hash tags included) and the same apply.lua runs once per slot, all slots in
// one pipeline per node (one round trip per node); the item-vector changelog, a key on its own
// slot, is added afterwards with ZADD GT (a refused older version never lowers it), then the
// freshness stamp. Each node's pipeline ends with WAIT for a replica (see applyOnce). A failover (connection refused, MOVED/ASK, CLUSTERDOWN, TRYAGAIN, READONLY,
// a promoted replica without the scripts) repeats the whole write with backoff up to a
// deadline: every write is version-checked, so repeating one that landed changes nothing.
package recs.stream;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.Supplier;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import redis.clients.jedis.Connection;
import redis.clients.jedis.ConnectionPool;
import redis.clients.jedis.HostAndPort;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.Pipeline;
import redis.clients.jedis.RedisClusterClient;
import redis.clients.jedis.Response;
import redis.clients.jedis.exceptions.JedisClusterException;
import redis.clients.jedis.exceptions.JedisClusterOperationException;
import redis.clients.jedis.exceptions.JedisConnectionException;
import redis.clients.jedis.exceptions.JedisDataException;
import redis.clients.jedis.exceptions.JedisException;
import redis.clients.jedis.exceptions.JedisNoScriptException;
import redis.clients.jedis.exceptions.JedisRedirectionException;
import redis.clients.jedis.params.ZAddParams;
import redis.clients.jedis.util.JedisClusterCRC16;

final class ClusterApply implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ClusterApply.class);
    static final long FIRST_BACKOFF_MS = 50;
    static final long MAX_BACKOFF_MS = 1_000;
    static final long DEADLINE_MS = 60_000;
    private static final int TIMEOUT_MS = 2_000;
    static final long WAIT_MS = 250;  // WAIT for a replica; a shard without one costs this
    static final long NO_REPLICA_RECHECK_MS = 5_000;  // then it is not waited on for this long
    private static final List<String> TRANSIENT_REPLIES = List.of("MOVED", "ASK", "CLUSTERDOWN",
            "TRYAGAIN", "READONLY", "LOADING", "MASTERDOWN", "NOSCRIPT");

    private final RedisClusterClient client;
    private final byte[][] scripts;
    private final byte[][] shas;
    private final Map<HostAndPort, Long> skipWaitUntil = new HashMap<>();
    long retries;

    ClusterApply(String url, byte[]... scripts) {
        RedisConnect.ClusterAddress address = RedisConnect.parse(url);
        this.client = RedisClusterClient.builder().nodes(address.seeds())
                .clientConfig(address.clientConfig(TIMEOUT_MS)).build();
        this.scripts = scripts;
        this.shas = new byte[scripts.length][];
        for (int i = 0; i < scripts.length; i++) {
            shas[i] = sha1(scripts[i]);
        }
        loadScripts();
    }

    /** The hex SHA-1 EVALSHA names a script by (what SCRIPT LOAD returns). */
    static byte[] sha1(byte[] script) {
        try {
            byte[] digest = MessageDigest.getInstance("SHA-1").digest(script);
            return HexFormat.of().formatHex(digest).getBytes(StandardCharsets.US_ASCII);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("ClusterApply: no SHA-1", e);
        }
    }

    byte[] sha(int i) {
        return shas[i];
    }

    /** SCRIPT LOAD on every node that answers (a dead one gets them when it is back). */
    void loadScripts() {
        for (Map.Entry<String, ConnectionPool> node : client.getClusterNodes().entrySet()) {
            try (Connection c = node.getValue().getResource(); Jedis j = new Jedis(c)) {
                for (byte[] script : scripts) {
                    j.scriptLoad(script);
                }
            } catch (JedisException e) {
                LOG.warn("cluster writer: cannot load scripts on {}: {}", node.getKey(),
                        e.getMessage());
            }
        }
    }

    /** Indexes of the keys grouped by cluster slot, in first-seen order. */
    static Map<Integer, List<Integer>> groupBySlot(List<String> keys) {
        Map<Integer, List<Integer>> groups = new LinkedHashMap<>();
        for (int i = 0; i < keys.size(); i++) {
            groups.computeIfAbsent(JedisClusterCRC16.getSlot(keys.get(i)),
                    s -> new ArrayList<>()).add(i);
        }
        return groups;
    }

    /** One slot's script call: its keys and their 4 arguments each (member ""). */
    record SlotCall(int slot, List<byte[]> keys, List<byte[]> args) {}

    /**
     * Runs the apply script (scripts[0]) for every call, the calls of one node in one pipeline
     * on that node's connection closed by WAIT for a replica (so a write counts as done once a
     * replica has it: a failover then loses nothing acknowledged); then ZADD GT of the
     * changelog, and the freshness script (scripts[1]) when {@code freshArgs} is not null.
     * Returns how many keys the scripts wrote.
     */
    long applyOnce(List<SlotCall> calls, String logKey, Map<String, Double> changelog,
                   byte[] freshKey, List<byte[]> freshArgs) {
        Map<HostAndPort, List<SlotCall>> byNode = new LinkedHashMap<>();
        for (SlotCall call : calls) {
            try (Connection c = client.getConnectionFromSlot(call.slot())) {
                byNode.computeIfAbsent(c.getHostAndPort(), n -> new ArrayList<>()).add(call);
            }
        }
        long applied = 0;
        for (Map.Entry<HostAndPort, List<SlotCall>> node : byNode.entrySet()) {
            List<SlotCall> nodeCalls = node.getValue();
            long now = System.currentTimeMillis();
            boolean wait = now >= skipWaitUntil.getOrDefault(node.getKey(), 0L);
            try (Connection c = client.getConnectionFromSlot(nodeCalls.get(0).slot())) {
                Pipeline pipe = new Pipeline(c);
                List<Response<Object>> replies = new ArrayList<>(nodeCalls.size());
                for (SlotCall call : nodeCalls) {
                    replies.add(pipe.evalsha(shas[0], call.keys(), call.args()));
                }
                Response<Long> acked = wait ? pipe.waitReplicas(1, WAIT_MS) : null;
                pipe.sync();
                for (Response<Object> r : replies) {
                    applied += (Long) r.get();
                }
                if (acked != null && acked.get() < 1) {
                    // a shard without a replica (it died, or this is a promoted replica)
                    LOG.warn("cluster writer: no replica of {} acknowledged within {} ms; not "
                            + "waiting on it for {} ms", node.getKey(), WAIT_MS,
                            NO_REPLICA_RECHECK_MS);
                    skipWaitUntil.put(node.getKey(), now + NO_REPLICA_RECHECK_MS);
                }
            }
        }
        if (!changelog.isEmpty()) {
            client.zadd(logKey, changelog, ZAddParams.zAddParams().gt());
        }
        if (freshArgs != null) {
            client.evalsha(shas[1], List.of(freshKey), freshArgs);
        }
        return applied;
    }

    static boolean isTransient(Throwable e) {
        if (e instanceof JedisConnectionException || e instanceof JedisClusterOperationException
                || e instanceof JedisRedirectionException || e instanceof JedisClusterException
                || e instanceof JedisNoScriptException) {
            return true;
        }
        if (e instanceof JedisDataException && e.getMessage() != null) {
            String head = e.getMessage().split(" ", 2)[0];
            return TRANSIENT_REPLIES.contains(head);
        }
        return false;
    }

    /** {@code attempt}, repeated on transient errors with backoff until the deadline. */
    <T> T retrying(String what, Supplier<T> attempt) {
        long began = System.currentTimeMillis();
        long delay = FIRST_BACKOFF_MS;
        for (int tries = 1; ; tries++) {
            try {
                return attempt.get();
            } catch (JedisException e) {
                if (!isTransient(e)
                        || System.currentTimeMillis() - began + delay > DEADLINE_MS) {
                    throw e;
                }
                retries++;
                LOG.warn("cluster writer: {} failed ({}: {}); retry {} in {} ms", what,
                        e.getClass().getSimpleName(), e.getMessage(), tries, delay);
                sleep(delay / 2 + ThreadLocalRandom.current().nextLong(delay / 2 + 1));
                recover();
                delay = Math.min(delay * 2, MAX_BACKOFF_MS);
            }
        }
    }

    private void recover() {
        try {
            client.refreshClusterTopology();
        } catch (JedisException e) {
            LOG.warn("cluster writer: topology refresh failed: {}", e.getMessage());
        }
        loadScripts();
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("cluster writer: interrupted while retrying", e);
        }
    }

    /** Empty every master (the benchmark's passes; never called by the sink). */
    void flushAll() {
        client.flushAll();
        loadScripts();
    }

    @Override
    public void close() {
        client.close();
    }
}
