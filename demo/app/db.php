<?php
// Shared by the demo pages: one connection per request (the PHP agent has set PGAPPNAME, so
// PostgreSQL sees application_name = req:<correlation id>), and each query timed from PHP so
// the page can report what its queries took, to compare with the request summary.
$GLOBALS['demo_queries'] = array();

function demo_db()
{
    static $conn = null;
    if ($conn === null) {
        $conn = pg_connect(getenv('BITVILLE_DEMO_CONNINFO'));
        if ($conn === false) {
            http_response_code(503);
            exit("cannot connect to PostgreSQL\n");
        }
    }
    return $conn;
}

/** Runs a query (with parameters when given) and records how long it took, seen from PHP. */
function demo_query(string $sql, array $params = array()): array
{
    $db = demo_db(); // connecting is not part of the query's time
    $start = hrtime(true);
    $result = $params ? pg_query_params($db, $sql, $params) : pg_query($db, $sql);
    $GLOBALS['demo_queries'][] = (hrtime(true) - $start) / 1e6;
    $rows = pg_fetch_all($result);
    return $rows === false ? array() : $rows;
}

/** The page's answer: what it did, for people and for the end-to-end test. */
function demo_done(string $what): void
{
    header('Content-Type: application/json');
    echo json_encode(array(
        'page' => $what,
        'correlation_id' => class_exists('BitvilleAgent', false) ? BitvilleAgent::correlationId() : null,
        'queries' => count($GLOBALS['demo_queries']),
        'db_ms' => round(array_sum($GLOBALS['demo_queries']), 3),
    )) . "\n";
}
