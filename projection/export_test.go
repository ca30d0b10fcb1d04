package projection

// OrdersSpec is the store tests' projection, for the external tests.
const OrdersSpec = ordersSpec
