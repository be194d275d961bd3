<?php
// One slow reporting query.
require __DIR__ . '/db.php';
demo_query('SELECT o.customer, sum(i.qty) AS items FROM bitville_demo.orders o JOIN bitville_demo.order_items i ON i.order_id = o.id, pg_sleep(0.6) GROUP BY o.customer ORDER BY items DESC');
demo_done('report: one slow query');
