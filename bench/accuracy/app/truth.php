<?php
// The ground truth of one request, measured by the application itself: its correlation id
// (from the PHP agent's API), its window, and each statement's backend, text and start and end
// as PHP timed them around the driver call. One JSON line per request, appended to
// BV_ACC_TRUTH when the request ends. Times are microseconds since the epoch (the server's
// clock: PHP, PostgreSQL and the agents share this machine).

final class AccTruth
{
    /** @var array */ private static $request = array();
    /** @var array */ private static $statements = array();

    public static function begin(string $page, string $connection): void
    {
        self::$request = array(
            'id' => class_exists('BitvilleAgent', false) ? BitvilleAgent::correlationId() : '',
            'page' => $page,
            'connection' => $connection,
            'start_us' => (int) round($_SERVER['REQUEST_TIME_FLOAT'] * 1e6),
        );
        register_shutdown_function(array('AccTruth', 'write'));
    }

    public static function now(): int
    {
        return (int) round(microtime(true) * 1e6);
    }

    public static function note(int $pid, string $sql, int $startUs, int $endUs): void
    {
        self::$statements[] = array('pid' => $pid, 'sql' => $sql, 'start_us' => $startUs, 'end_us' => $endUs);
    }

    /** pg_query / pg_query_params, timed. */
    public static function pg($conn, string $sql, ?array $params = null)
    {
        $pid = pg_get_pid($conn);
        $start = self::now();
        $result = $params === null ? pg_query($conn, $sql) : pg_query_params($conn, $sql, $params);
        $rows = pg_fetch_all($result);
        self::note($pid, $sql, $start, self::now());
        return $rows;
    }

    /** PDO prepare + execute + fetch, timed; the statement is freed (pdo_pgsql's DEALLOCATE) after the timing. */
    public static function pdo(PDO $pdo, int $pid, string $sql, array $params = array())
    {
        $start = self::now();
        $stmt = $pdo->prepare($sql);
        $stmt->execute($params);
        $rows = $stmt->fetchAll();
        self::note($pid, $sql, $start, self::now());
        $stmt = null;
        return $rows;
    }

    /** A PDO connection's backend pid: one statement of its own, part of the truth like any other. */
    public static function pdoPid(PDO $pdo): int
    {
        $start = self::now();
        $pid = (int) $pdo->query('SELECT pg_backend_pid() AS acc_pid')->fetchColumn();
        self::note($pid, 'SELECT pg_backend_pid() AS acc_pid', $start, self::now());
        return $pid;
    }

    /** The statement durations asked for (?ms=120,40,150), in seconds. */
    public static function durations(): array
    {
        $ms = isset($_GET['ms']) ? explode(',', (string) $_GET['ms']) : array();
        return array_map(static function ($v) {
            return max(0, (int) $v) / 1000;
        }, array_filter($ms, 'strlen'));
    }

    /** PHP's own work between statements (?gap=ms), as a sleep. */
    public static function gap(): void
    {
        $gap = isset($_GET['gap']) ? (int) $_GET['gap'] : 0;
        if ($gap > 0) {
            usleep($gap * 1000);
        }
    }

    public static function write(): void
    {
        $line = self::$request + array('end_us' => self::now(), 'statements' => self::$statements);
        file_put_contents((string) getenv('BV_ACC_TRUTH'), json_encode($line) . "\n", FILE_APPEND | LOCK_EX);
        echo "ok\n";
    }
}

/** A distinct text per position (distinct identifiers survive redaction), so only the N+1 page repeats one. */
function acc_step_sql(int $i, string $placeholder): string
{
    return 'SELECT pg_sleep(' . $placeholder . ') AS step_' . chr(ord('a') + $i);
}
