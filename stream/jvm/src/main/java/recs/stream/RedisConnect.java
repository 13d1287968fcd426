// Twin of state/redis_connect.py: a redis+cluster://[user:password@]host:port[,host:port...][/0]
// URL names a Redis Cluster by its seed nodes; any other URL is one Redis (Jedis reads it).
package recs.stream;

import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashSet;
import java.util.Locale;
import java.util.Set;

import redis.clients.jedis.DefaultJedisClientConfig;
import redis.clients.jedis.HostAndPort;
import redis.clients.jedis.JedisClientConfig;

final class RedisConnect {
    static final String CLUSTER_PREFIX = "redis+cluster://";
    private static final String EXPECTED =
            "; expected redis+cluster://[user:password@]host:port[,host:port...]";

    /** The seeds and credentials of a cluster URL. */
    record ClusterAddress(Set<HostAndPort> seeds, String user, String password) {
        JedisClientConfig clientConfig(int timeoutMs) {
            DefaultJedisClientConfig.Builder b = DefaultJedisClientConfig.builder()
                    .connectionTimeoutMillis(timeoutMs).socketTimeoutMillis(timeoutMs);
            if (user != null) {
                b.user(user);
            }
            if (password != null) {
                b.password(password);
            }
            return b.build();
        }
    }

    private RedisConnect() {}

    static boolean isCluster(String url) {
        return url.toLowerCase(Locale.ROOT).startsWith(CLUSTER_PREFIX);
    }

    static ClusterAddress parse(String url) {
        if (!isCluster(url)) {
            throw error(url, "the scheme is not redis+cluster");
        }
        String rest = url.substring(CLUSTER_PREFIX.length());
        if (rest.contains("?") || rest.contains("#")) {
            throw error(url, "query parameters are not supported");
        }
        int slash = rest.indexOf('/');
        String netloc = slash < 0 ? rest : rest.substring(0, slash);
        String path = slash < 0 ? "" : rest.substring(slash + 1);
        if (!path.isEmpty() && !path.equals("0")) {
            throw error(url, "database " + path
                    + " requested, but a Redis Cluster has only database 0");
        }
        String user = null;
        String password = null;
        int at = netloc.lastIndexOf('@');
        if (at >= 0) {
            String info = netloc.substring(0, at);
            netloc = netloc.substring(at + 1);
            int colon = info.indexOf(':');
            String u = decode(colon < 0 ? info : info.substring(0, colon));
            user = u.isEmpty() ? null : u;
            password = colon < 0 ? null : decode(info.substring(colon + 1));
        }
        Set<HostAndPort> seeds = new LinkedHashSet<>();
        for (String part : netloc.split(",", -1)) {
            String seed = part.trim();
            int colon = seed.lastIndexOf(':');
            if (seed.isEmpty()) {
                throw error(url, "empty seed node");
            }
            if (colon <= 0) {
                throw error(url, "seed '" + seed + "' has no port");
            }
            int port;
            try {
                port = Integer.parseInt(seed.substring(colon + 1));
            } catch (NumberFormatException e) {
                port = -1;
            }
            if (port < 1 || port > 65535) {
                throw error(url, "seed '" + seed + "' has port '" + seed.substring(colon + 1)
                        + "', expected 1..65535");
            }
            String host = seed.substring(0, colon).replace("[", "").replace("]", "");
            seeds.add(new HostAndPort(host, port));
        }
        return new ClusterAddress(seeds, user, password);
    }

    private static String decode(String s) {
        return URLDecoder.decode(s.replace("+", "%2B"), StandardCharsets.UTF_8);
    }

    private static IllegalArgumentException error(String url, String why) {
        int at = url.lastIndexOf('@');
        String shown = at < 0 ? url : CLUSTER_PREFIX + "***@" + url.substring(at + 1);
        return new IllegalArgumentException("RedisConnect: bad Redis Cluster URL '" + shown
                + "': " + why + EXPECTED);
    }
}
