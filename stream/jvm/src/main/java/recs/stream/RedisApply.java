// Twin of state/redis_store.py RedisStore.apply and mark_fresh: the coalesced writes of a flush
// applied through the same conditional script (state/apply.lua, bundled as a resource), 500 keys
// per call, all calls of a flush pipelined in one round trip; then the writer's freshness stamp
// raised to the newest event time written. On a Redis Cluster (a redis+cluster:// URL) the same
// writes go through ClusterApply: grouped by slot, retried through a failover.
package recs.stream;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import redis.clients.jedis.Jedis;
import redis.clients.jedis.Pipeline;
import redis.clients.jedis.Response;
import redis.clients.jedis.exceptions.JedisNoScriptException;

final class RedisApply implements AutoCloseable {
    static final String PREFIX = "recs:v1:";
    static final String FRESHNESS_KEY = PREFIX + "meta:freshness";
    static final String ITEMVEC_LOG_KEY = PREFIX + "meta:itemvec-log";
    static final String ITEMVEC_PREFIX = PREFIX + "itemvec:";
    static final int BATCH = 500;
    static final long TOMBSTONE_TTL_S = 86_400;
    private static final byte[] EMPTY = new byte[0];
    // raise the writer's stamp only (mark_fresh: a replayed older batch never lowers it)
    private static final String FRESH_LUA =
            "local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) "
            + "if not cur or cur < tonumber(ARGV[2]) then "
            + "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end return 0";

    private final Jedis jedis;  // one Redis; null on a cluster
    private final ClusterApply cluster;  // a Redis Cluster; null on one Redis
    private final long sessionTtlS;
    private final String writer;
    private final byte[] applyScript;
    private byte[] applySha;
    private byte[] freshSha;
    private long freshest;

    RedisApply(String redisUrl, long sessionTtlS, String writer) {
        this.sessionTtlS = sessionTtlS;
        this.writer = writer;
        this.applyScript = loadScript();
        if (RedisConnect.isCluster(redisUrl)) {
            this.jedis = null;
            this.cluster = new ClusterApply(redisUrl, applyScript,
                    FRESH_LUA.getBytes(StandardCharsets.UTF_8));
        } else {
            this.jedis = new Jedis(URI.create(redisUrl));
            this.cluster = null;
            loadScripts();
        }
    }

    /** Cluster writes repeated after a transient error (0 on one Redis). */
    long retries() {
        return cluster == null ? 0 : cluster.retries;
    }

    static byte[] loadScript() {
        try (InputStream in = RedisApply.class.getResourceAsStream("/apply.lua")) {
            if (in == null) {
                throw new IllegalStateException("RedisApply: apply.lua is not in the jar");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new IllegalStateException("RedisApply: cannot read apply.lua", e);
        }
    }

    private void loadScripts() {
        applySha = jedis.scriptLoad(applyScript);
        freshSha = jedis.scriptLoad(FRESH_LUA.getBytes(StandardCharsets.UTF_8));
    }

    /** Seconds a key lives: sessions and user vectors expire, tombstones after a day. */
    long ttlFor(String key, String envelope) {
        if (envelope.endsWith(",\"d\":null}")) {
            return TOMBSTONE_TTL_S;
        }
        if (key.startsWith(PREFIX + "session:") || key.startsWith(PREFIX + "uservec:")) {
            return sessionTtlS;
        }
        return 0;
    }

    /** Write the batch; returns how many keys were written (not older than stored). */
    long apply(List<UpdateBatch.Pending> batch) {
        if (batch.isEmpty()) {
            return 0;
        }
        if (cluster != null) {
            return applyCluster(batch);
        }
        try {
            return applyOnce(batch);
        } catch (JedisNoScriptException e) {  // Redis restarted and lost its script cache
            loadScripts();
            return applyOnce(batch);
        }
    }

    private long applyOnce(List<UpdateBatch.Pending> batch) {
        Pipeline pipe = jedis.pipelined();
        List<Response<Object>> replies = new ArrayList<>();
        long newest = 0;
        for (int start = 0; start < batch.size(); start += BATCH) {
            List<UpdateBatch.Pending> chunk = batch.subList(start, Math.min(batch.size(),
                    start + BATCH));
            List<byte[]> keys = new ArrayList<>(chunk.size());
            List<byte[]> args = new ArrayList<>(chunk.size() * 4 + 1);
            for (UpdateBatch.Pending p : chunk) {
                addArgs(p, keys, args, true);
                newest = Math.max(newest, p.asOf());
            }
            args.add(ITEMVEC_LOG_KEY.getBytes(StandardCharsets.UTF_8));
            replies.add(pipe.evalsha(applySha, keys, args));
        }
        if (newest > freshest) {
            pipe.evalsha(freshSha, List.of(FRESHNESS_KEY.getBytes(StandardCharsets.UTF_8)),
                    List.of(writer.getBytes(StandardCharsets.UTF_8),
                            Long.toString(newest).getBytes(StandardCharsets.UTF_8)));
        }
        pipe.sync();
        long applied = 0;
        for (Response<Object> r : replies) {
            applied += (Long) r.get();
        }
        freshest = Math.max(freshest, newest);
        return applied;
    }

    /** One key's script arguments: version, envelope, ttl, changelog member ("" without). */
    private void addArgs(UpdateBatch.Pending p, List<byte[]> keys, List<byte[]> args,
                         boolean member) {
        keys.add(p.key().getBytes(StandardCharsets.UTF_8));
        args.add(Long.toString(p.version()).getBytes(StandardCharsets.UTF_8));
        args.add(p.envelope().getBytes(StandardCharsets.UTF_8));
        args.add(Long.toString(ttlFor(p.key(), p.envelope())).getBytes(StandardCharsets.UTF_8));
        args.add(member && p.key().startsWith(ITEMVEC_PREFIX)
                ? p.key().substring(ITEMVEC_PREFIX.length()).getBytes(StandardCharsets.UTF_8)
                : EMPTY);
    }

    private long applyCluster(List<UpdateBatch.Pending> batch) {
        List<String> keyNames = new ArrayList<>(batch.size());
        Map<String, Double> changelog = new HashMap<>();
        long newest = 0;
        for (UpdateBatch.Pending p : batch) {
            keyNames.add(p.key());
            newest = Math.max(newest, p.asOf());
            if (p.key().startsWith(ITEMVEC_PREFIX)) {
                changelog.merge(p.key().substring(ITEMVEC_PREFIX.length()),
                        (double) p.version(), Math::max);
            }
        }
        List<ClusterApply.SlotCall> calls = new ArrayList<>();
        byte[] logKey = ITEMVEC_LOG_KEY.getBytes(StandardCharsets.UTF_8);
        for (Map.Entry<Integer, List<Integer>> slot
                : ClusterApply.groupBySlot(keyNames).entrySet()) {
            List<Integer> group = slot.getValue();
            List<byte[]> keys = new ArrayList<>(group.size());
            List<byte[]> args = new ArrayList<>(group.size() * 4 + 1);
            for (int i : group) {
                addArgs(batch.get(i), keys, args, false);
            }
            args.add(logKey);
            calls.add(new ClusterApply.SlotCall(slot.getKey(), keys, args));
        }
        List<byte[]> freshArgs = newest > freshest
                ? List.of(writer.getBytes(StandardCharsets.UTF_8),
                        Long.toString(newest).getBytes(StandardCharsets.UTF_8))
                : null;
        long applied = cluster.retrying("apply", () -> cluster.applyOnce(calls, ITEMVEC_LOG_KEY,
                changelog, FRESHNESS_KEY.getBytes(StandardCharsets.UTF_8), freshArgs));
        freshest = Math.max(freshest, newest);
        return applied;
    }

    /** Empty the database (the benchmark's passes; never called by the sink). */
    void flushDatabase() {
        if (cluster != null) {
            cluster.flushAll();
            return;
        }
        jedis.flushDB();
        loadScripts();
    }

    @Override
    public void close() {
        if (cluster != null) {
            cluster.close();
        } else {
            jedis.close();
        }
    }
}
